// nanobind definitions of AudioManager and PcmTap. Every call that may wait on
// an engine lock or thread runs with the GIL released (DESIGN.md: the GIL
// first, engine locks second; never the other way round).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <pthread.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <chrono>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>

#include "bindings/numpy_array.h"
#include "bindings/py_audio_manager.h"
#include "bindings/release_gil.h"
#include "engine/sink.h"
#include "bindings/stats_dict.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace sinkcast::bindings {

namespace {

using AnyCpuArray = nb::ndarray<nb::ro, nb::device::cpu>;
using FloatFrames = nb::ndarray<nb::numpy, float, nb::ndim<2>>;

constexpr size_t kMaxRenderFrames = 48000 * 600;  // ten minutes per call

// Integer arguments are taken as 64-bit: nanobind refuses a Python int that
// does not fit the C type with a TypeError listing the signature, which does
// not say which argument is wrong. One beyond int's range is a ValueError
// that names it; within it, the engine's own check says what is allowed.
int narrow(int64_t value, const char* name) {
    if (value < std::numeric_limits<int>::min() || value > std::numeric_limits<int>::max())
        throw nb::value_error((std::string(name) + " is out of range, got " + std::to_string(value)).c_str());
    return static_cast<int>(value);
}

std::optional<int> narrow(std::optional<int64_t> value, const char* name) {
    if (!value) return std::nullopt;
    return narrow(*value, name);
}

std::optional<SampleFormat> format_of(const AnyCpuArray& a) {
    if (a.dtype() == nb::dtype<int16_t>()) return SampleFormat::Int16;
    if (a.dtype() == nb::dtype<int32_t>()) return SampleFormat::Int32;
    if (a.dtype() == nb::dtype<float>()) return SampleFormat::Float32;
    return std::nullopt;
}

// The element type, as numpy names it: from numpy's dtype, else from the
// DLPack import (a torch tensor's dtype has no .name), else the object's type.
std::string dtype_name(nb::handle samples, const AnyCpuArray& dlpack) {
    try {
        return nb::cast<std::string>(samples.attr("dtype").attr("name"));
    } catch (const std::exception&) {  // not (...): the unwinding that ends a thread at exit goes on
    }
    if (PyMemoryView_Check(samples.ptr())) {  // its struct format, as numpy reads it ('d' -> float64)
        try {
            return nb::cast<std::string>(
                nb::module_::import_("numpy").attr("dtype")(samples.attr("format")).attr("name"));
        } catch (const std::exception&) {
        }
    }
    if (dlpack.is_valid()) {
        const auto dtype = dlpack.dtype();
        const char* kind = dtype.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Int)     ? "int"
                           : dtype.code == static_cast<uint8_t>(nb::dlpack::dtype_code::UInt)  ? "uint"
                           : dtype.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Float) ? "float"
                           : dtype.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Bool)  ? "bool"
                                                                                               : "dtype code ";
        return kind + std::to_string(dtype.bits);
    }
    return nb::cast<std::string>(samples.type().attr("__name__"));
}

// Bytes with no element type of their own: bytes, bytearray, a memoryview of
// bytes. A typed memoryview (of float64, say) is named by its type instead.
bool is_raw_bytes(nb::handle samples) {
    if (PyBytes_Check(samples.ptr()) || PyByteArray_Check(samples.ptr())) return true;
    if (!PyMemoryView_Check(samples.ptr())) return false;
    const char* format = PyMemoryView_GET_BUFFER(samples.ptr())->format;
    return format == nullptr || std::strcmp(format, "B") == 0 || std::strcmp(format, "b") == 0 ||
           std::strcmp(format, "c") == 0;
}

// The object's DLPack capsule (a new reference), or nullptr with no error
// set if it has no __dlpack__ or refuses both kinds. Called here rather than
// by nanobind, whose conversion is noexcept: __dlpack__ is Python code
// (torch's), and CPython ends a daemon thread running it as the program ends
// by unwinding, which aborted the process there (call_python_or_park parks
// it). As nanobind does: looked up on the type, so a buffer without one pays
// for no AttributeError, and called with the object as first argument, so no
// bound method is made; the plain capsule first, then the versioned one, which
// a read-only source needs (BufferError) and an older one refuses (TypeError).
PyObject* export_dlpack(PyObject* samples) {
    static PyObject* const name = PyUnicode_InternFromString("__dlpack__");
    static PyObject* const max_version_kw = Py_BuildValue("(s)", "max_version");
    static PyObject* const max_version =
        Py_BuildValue("(ii)", int(nb::dlpack::major_version), int(nb::dlpack::minor_version));
    PyObject* method = name ? _PyType_Lookup(Py_TYPE(samples), name) : nullptr;  // borrowed
    if (method == nullptr || max_version_kw == nullptr || max_version == nullptr) return nullptr;
    Py_INCREF(method);  // the call may change the type's attributes
    PyObject* capsule = call_python_or_park([&]() -> PyObject* {
        PyObject* args[] = {samples, max_version};
        PyObject* result = PyObject_Vectorcall(method, args, 1, nullptr);
        if (result == nullptr &&
            (PyErr_ExceptionMatches(PyExc_BufferError) || PyErr_ExceptionMatches(PyExc_TypeError))) {
            PyErr_Clear();
            result = PyObject_Vectorcall(method, args, 1, max_version_kw);
        }
        if (result == nullptr) PyErr_Clear();
        return result;
    });
    Py_DECREF(method);
    return capsule;
}

// numpy arrays are read through numpy's C API; anything else that speaks
// DLPack (a CPU torch tensor, say) through nanobind, which `dlpack` then
// holds. A DLPack import cost a numpy push ~250 ns, a third of the call.
bool view_samples(nb::handle samples, SamplesView& view, AnyCpuArray& dlpack) {
    if (view_numpy_samples(samples, view)) return true;
    // If the export fails, nanobind's own ways (the buffer protocol) get the object itself.
    nb::object exported = nb::borrow(samples);
    if (!PyCapsule_CheckExact(samples.ptr()))
        if (PyObject* capsule = export_dlpack(samples.ptr())) exported = nb::steal(capsule);
    if (!nb::try_cast(exported, dlpack, false)) return false;
    view = SamplesView{};
    view.data = dlpack.data();
    view.format = format_of(dlpack);
    view.ndim = static_cast<int>(dlpack.ndim());
    for (int i = 0; i < view.ndim && i < 2; ++i) view.shape[i] = dlpack.shape(static_cast<size_t>(i));
    if (view.ndim == 1) view.c_contiguous = view.shape[0] <= 1 || dlpack.stride(0) == 1;
    if (view.ndim == 2)
        view.c_contiguous = (view.shape[1] <= 1 || dlpack.stride(1) == 1) &&
                            (view.shape[0] <= 1 || dlpack.stride(0) == static_cast<int64_t>(view.shape[1]));
    return true;
}

// source_serial=: a value from source_serial(), checked by the engine against the
// source the id names when the audio is queued. Any Python int: one beyond
// int64 would otherwise get nanobind's signature dump, naming no argument.
std::optional<uint64_t> checked_serial(const std::optional<nb::int_>& serial) {
    if (!serial) return std::nullopt;
    const unsigned long long value = PyLong_AsUnsignedLongLong(serial->ptr());
    if (value == static_cast<unsigned long long>(-1) && PyErr_Occurred()) PyErr_Clear();
    else if (value != 0) return value;
    throw nb::value_error(("source_serial is a value from source_serial() (1 to 2**64-1), got " +
                           nb::cast<std::string>(nb::str(*serial)))
                              .c_str());
}

// Validates the array's type and shape and pushes it; the samples are read in
// place (no copy before the one into the source's ring) with the GIL released.
void push_samples(PyAudioManager& engine, const std::string& source_id, nb::handle samples,
                  const std::optional<nb::int_>& source_serial) {
    const std::optional<uint64_t> serial = checked_serial(source_serial);
    SamplesView view;
    AnyCpuArray dlpack;
    if (!view_samples(samples, view, dlpack))
        throw nb::type_error("push() takes a numpy array of int16, int32 or float32 samples");
    if (view.byte_swapped)
        throw nb::type_error(("push() takes samples in this machine's byte order, got " +
                              dtype_name(samples, dlpack) +
                              " swapped; convert with samples.astype(samples.dtype.newbyteorder('='))")
                                 .c_str());
    if (!view.format) {
        if (is_raw_bytes(samples))  // bytes of PCM: say how to type them
            throw nb::type_error(("push() takes int16, int32 or float32 samples, got raw " +
                                  nb::cast<std::string>(samples.type().attr("__name__")) +
                                  "; read them with numpy.frombuffer(data, numpy.int16) (or int32, float32)")
                                     .c_str());
        throw nb::type_error(("push() takes int16, int32 or float32 samples, got " + dtype_name(samples, dlpack) +
                              "; convert them to float32 first (numpy: samples.astype(numpy.float32))")
                                 .c_str());
    }
    if (view.ndim != 1 && view.ndim != 2)
        throw nb::value_error(("push() takes samples shaped (frames, channels) or 1-D, got " +
                               std::to_string(view.ndim) + " dimensions")
                                  .c_str());
    // Our own reference while the GIL is released: numpy then refuses to
    // resize the array under the copy (as it did while a DLPack import held it).
    nb::object keep = nb::borrow(samples);
    if (!view.c_contiguous) {
        // A strided view (a slice, a transposed array) is copied once into C
        // order, by numpy: through DLPack when the object speaks it, else
        // through the buffer protocol (a strided memoryview).
        nb::module_ np = nb::module_::import_("numpy");
        nb::object as_numpy = dlpack.is_valid() && nb::hasattr(samples, "__dlpack__")
                                  ? np.attr("from_dlpack")(samples)
                                  : nb::borrow(samples);
        keep = np.attr("ascontiguousarray")(as_numpy);
        const std::optional<SampleFormat> format = view.format;
        const int ndim = view.ndim;
        if (!view_numpy_samples(keep, view) || view.format != format || view.ndim != ndim || !view.c_contiguous)
            throw nb::type_error("could not make the samples contiguous");
    }
    release_gil released;
    if (view.ndim == 1) {
        // 1-D is interleaved, frame-major; the engine splits it by the source's channel count.
        engine.push_interleaved(source_id, view.data, *view.format, view.shape[0], serial);
    } else {
        engine.push(source_id, view.data, *view.format, view.shape[0], static_cast<int>(view.shape[1]), serial);
    }
}

// The sink to render. The lookup only waits when the registry is being changed
// (add or remove a sink): only then is the GIL released for it, as for any lock wait.
std::shared_ptr<Sink> sink_to_render(PyAudioManager& engine, const std::string& sink_id) {
    if (auto sink = engine.manual_sink(sink_id, false)) return sink;
    release_gil released;
    return engine.manual_sink(sink_id);
}

constexpr const char* kRenderOutError =
    "render(out=...) takes a writable C-contiguous float32 array shaped (frames, channels)";

// Where render() writes: a writable, C-contiguous float32 array. Arrays are
// read through the plain buffer protocol, as a DLPack import costs several
// times more (as much as mixing one source); objects that only speak DLPack
// (a CPU torch tensor, say) go through nanobind's ndarray. Held with the GIL.
class RenderTarget {
public:
    explicit RenderTarget(nb::handle object) {
        if (PyObject_GetBuffer(object.ptr(), &view_, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) == 0) {
            has_view_ = true;
            return;
        }
        PyErr_Clear();
        if (!nb::try_cast(object, dlpack_, false)) throw nb::type_error(kRenderOutError);
    }
    ~RenderTarget() {
        if (has_view_) PyBuffer_Release(&view_);
    }
    RenderTarget(const RenderTarget&) = delete;
    RenderTarget& operator=(const RenderTarget&) = delete;

    // The samples, once the target is known to be float32 shaped (frames, channels).
    float* checked(size_t frames, size_t channels) const {
        size_t rows, columns;
        float* data;
        if (!has_view_) {
            rows = dlpack_.shape(0);
            columns = dlpack_.shape(1);
            data = dlpack_.data();
        } else {
            const Py_buffer& v = view_;
            const bool float32 = v.itemsize == 4 && v.format != nullptr &&
                                 (std::strcmp(v.format, "f") == 0 || std::strcmp(v.format, "=f") == 0 ||
                                  (std::strcmp(v.format, "<f") == 0 && kLittleEndian));
            if (!float32 || v.ndim != 2) throw nb::type_error(kRenderOutError);
            rows = static_cast<size_t>(v.shape[0]);
            columns = static_cast<size_t>(v.shape[1]);
            data = static_cast<float*>(v.buf);
        }
        if (rows != frames || columns != channels)
            throw std::invalid_argument("render(out=...) needs shape (" + std::to_string(frames) + ", " +
                                        std::to_string(channels) + "), got (" + std::to_string(rows) + ", " +
                                        std::to_string(columns) + ")");
        return data;
    }

private:
    static constexpr bool kLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
    Py_buffer view_{};
    bool has_view_ = false;
    nb::ndarray<float, nb::ndim<2>, nb::c_contig, nb::device::cpu> dlpack_;
};

nb::object render_frames(PyAudioManager& engine, const std::string& sink_id, int64_t frames, nb::handle out) {
    if (frames < 0 || static_cast<size_t>(frames) > kMaxRenderFrames)
        throw nb::value_error(("render() frames must be from 0 to " + std::to_string(kMaxRenderFrames) +
                               ", got " + std::to_string(frames))
                                  .c_str());
    std::shared_ptr<Sink> sink = sink_to_render(engine, sink_id);
    const size_t channels = static_cast<size_t>(sink->config().channels);
    nb::object result;
    float* samples;
    // The caller's buffer stays exported until the mix is written: no other
    // thread can resize or free it while the GIL is released.
    std::optional<RenderTarget> target;
    if (!out.is_none()) {
        // Into the caller's buffer: no allocation, for loops that render period after period.
        result = nb::borrow(out);
        target.emplace(result);
        samples = target->checked(static_cast<size_t>(frames), channels);
    } else {
        // Nobody else holds this array yet.
        std::tie(result, samples) = new_float32_array(static_cast<size_t>(frames), channels);
    }
    {
        release_gil released;
        sink->render(samples, static_cast<size_t>(frames));
        sink.reset();  // the last reference may be ours: free the sink without the GIL
    }
    return result;
}

// A tap made before a fork() cannot be read in the child (PcmTap::made_before_fork).
const PcmTap& usable(const PcmTap& tap) {
    if (tap.made_before_fork())
        throw EngineClosedError("this PcmTap was opened before the process forked: its audio stays in the parent "
                                "process, so it cannot be read here. Open taps in the process that reads them");
    return tap;
}

FloatFrames read_tap(PcmTap& tap, std::optional<int64_t> max_frames) {
    usable(tap);
    size_t limit;
    size_t channels = static_cast<size_t>(tap.channels());
    if (max_frames) {
        if (*max_frames < 0) throw nb::value_error("max_frames must not be negative");
        limit = static_cast<size_t>(*max_frames);
    } else {
        limit = tap.available();
    }
    limit = std::min(limit, tap.capacity_frames());
    std::unique_ptr<float[]> buffer(new float[limit * channels + 1]);
    size_t got;
    {
        release_gil released;
        got = tap.read(buffer.get(), limit);
    }
    float* data = buffer.release();
    nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<float*>(p); });
    return FloatFrames(data, {got, channels}, owner);
}

PyAudioManager* default_instance = nullptr;

// Set by the exit hook (stop_making_engines) before it shuts the engines
// down; read and written with the GIL held, as is the registration of a new
// engine. An engine made after that (by a daemon thread, while the program
// ends) was never shut down: its dispatcher could be waiting for the GIL when
// the interpreter finalized, and CPython unwinds such a thread, which aborted
// the process ("terminate called without an active exception", 1 exit in 300).
bool g_program_is_ending = false;
const bool g_reset_in_forked_children = [] {
    pthread_atfork(nullptr, nullptr, [] { g_program_is_ending = false; });
    return true;
}();

void refuse_new_engines_at_exit() {
    if (g_program_is_ending)
        throw EngineClosedError("the program is ending (sinkcast's exit hook has shut its engines down): no new "
                                "AudioManager can start now, its threads would outlive the interpreter");
}

}  // namespace

PyAudioManager::~PyAudioManager() {
    // Runs from Python's deallocator with the GIL held: let engine threads that
    // wait for the GIL finish while we join them.
    python_alive_ = false;
    if (!shutdown_finished()) shutdown_from_python();
}

void PyAudioManager::shutdown_from_python() {
    // Also when closed() already: another thread's shutdown may still be
    // delivering callbacks, and shutdown() waits for it to end.
    if (!shutdown_finished()) {
        // release_gil, not nb::gil_scoped_release: a daemon thread shutting an
        // engine down (or dropping one, or collecting one) as the program ends
        // would be unwound asking for the GIL back, and abort the process. Once
        // the exit hook has run it keeps the GIL, and the dispatcher delivers
        // nothing more to Python (PythonSignalingHandler::deliver).
        release_gil released;
        shutdown();
    }
}

void stop_making_engines() { g_program_is_ending = true; }

void shutdown_all_managers() {
    // At exit, with the GIL held. shutdown_from_python() releases it, and then
    // another thread could drop the last reference to the engine and free it
    // under our feet: each engine Python owns is pinned by a reference of our
    // own while it shuts down. One whose deallocation has begun is skipped
    // (nb::find will not revive a dying object); the deallocation shuts it
    // down. The default instance is C++'s and never freed: it needs no pin,
    // and may have no Python object at all. The list is read again after each
    // engine, with the GIL held again, so it never holds a freed engine. An
    // engine another thread is shutting down is waited for like the others;
    // each is tried once, so an engine whose shutdown failed cannot hold up exit.
    std::vector<PyAudioManager*> tried;
    for (;;) {
        nb::object pin;
        PyAudioManager* next = nullptr;
        for (AudioManager* manager : AudioManager::live_managers()) {
            auto* py = dynamic_cast<PyAudioManager*>(manager);
            if (py == nullptr || py->shutdown_finished() || !py->python_alive()) continue;
            if (std::find(tried.begin(), tried.end(), py) != tried.end()) continue;
            if (py != default_instance) {
                pin = nb::find(py);
                if (!pin.is_valid()) continue;
            }
            next = py;
            break;
        }
        if (next == nullptr) break;
        tried.push_back(next);
        try {
            next->shutdown_from_python();
        } catch (...) {
            // At exit nothing can act on it; the next engine still gets its turn.
        }
    }
    // An engine that another thread is deallocating was skipped above: it shuts
    // itself down with the GIL released, still delivering callbacks, and needs
    // the GIL again to finish. Were the interpreter torn down meanwhile, those
    // would run against a finalizing runtime ("Fatal Python error" at exit).
    // Wait for it, GIL released, until it is gone from the list (10 s at most).
    wait_with_the_gil_released(
        [] {
            for (AudioManager* manager : AudioManager::live_managers()) {
                auto* py = dynamic_cast<PyAudioManager*>(manager);
                if (py != nullptr && !py->python_alive()) return false;  // read with the GIL: not freed yet
            }
            return true;
        },
        10.0);
}

void bind_audio_manager(nb::module_& m) {
    auto cls = nb::class_<PyAudioManager>(m, "AudioManager", nb::type_slots(audio_manager_gc_slots()),
                               "The sinkcast engine: sources mixed into named sinks, each streamed to its "
                               "listeners. realtime=False gives a manual clock driven by render(). ICE: bind_address (an IP address; \"\" for all interfaces), "
                               "port_range=(first, last), ice_servers (stun:/turn: URLs), ice_udp_mux=True to put "
                               "every listener on one UDP port (one libjuice picks within port_range; a one-port range "
                               "makes it known). A listener "
                               "session not connected connect_timeout seconds after it opened (an offer never answered, a peer gone before "
                               "ICE connected) is closed with a bye; None: never.")
        .def(
            "__init__",
            [](PyAudioManager* self, bool realtime, std::string bind_address,
               std::optional<std::pair<int, int>> port_range, std::vector<std::string> ice_servers,
               bool ice_udp_mux, std::optional<double> connect_timeout) {
                ManagerConfig config;
                config.realtime = realtime;
                config.bind_address = std::move(bind_address);
                if (port_range) {
                    auto [first, last] = *port_range;
                    if (first < 1 || last > 65535 || first > last)
                        throw nb::value_error("port_range must be (first, last) with 1 <= first <= last <= 65535");
                    config.port_range_begin = static_cast<uint16_t>(first);
                    config.port_range_end = static_cast<uint16_t>(last);
                }
                config.ice_servers = std::move(ice_servers);
                config.ice_udp_mux = ice_udp_mux;
                if (connect_timeout) {
                    if (!(*connect_timeout > 0 && *connect_timeout <= 86400))
                        throw nb::value_error("connect_timeout must be None (never) or seconds in (0, 86400]");
                    config.connect_timeout = std::chrono::milliseconds(
                        std::max<long long>(1, std::llround(*connect_timeout * 1000)));
                } else {
                    config.connect_timeout.reset();
                }
                refuse_new_engines_at_exit();
                new (self) PyAudioManager(std::move(config));
            },
            nb::kw_only(), "realtime"_a = true, "bind_address"_a = "127.0.0.1", "port_range"_a = nb::none(),
            "ice_servers"_a = std::vector<std::string>{}, "ice_udp_mux"_a = false,
            "connect_timeout"_a.none() = 30.0)
        .def_static(
            "get_instance",
            []() -> PyAudioManager* {
                // The process-wide default (the seed's singleton). Never freed: Python
                // wrappers may still point at it; it is shut down at exit.
                // Once the program is ending, the closed one is returned: its calls say so.
                if (default_instance && (!default_instance->closed() || g_program_is_ending))
                    return default_instance;
                refuse_new_engines_at_exit();
                default_instance = new PyAudioManager({});
                return default_instance;
            },
            nb::rv_policy::reference, "The process-wide default AudioManager (real time, ICE on 127.0.0.1).")
        .def_prop_ro("realtime", &PyAudioManager::realtime,
                     "True: each sink has its own real-time clock; False: a manual clock driven by render().")
        .def_prop_ro("closed", &PyAudioManager::closed, "True once shutdown() has begun.")
        .def(
            "add_sink",
            [](PyAudioManager& self, const std::string& sink_id, int64_t channels, int64_t frame_ms, double volume,
               std::optional<int64_t> bitrate, int64_t complexity, bool low_delay) {
                SinkConfig c;
                c.channels = narrow(channels, "channels");
                c.frame_ms = narrow(frame_ms, "frame_ms");
                c.volume = volume;
                c.bitrate_bps = narrow(bitrate, "bitrate");
                c.complexity = narrow(complexity, "complexity");
                c.low_delay = low_delay;
                self.add_sink(sink_id, c);
            },
            "sink_id"_a, "channels"_a = 2, "frame_ms"_a = 20, "volume"_a = 1.0, "bitrate"_a = nb::none(),
            "complexity"_a = 9, "low_delay"_a = false, nb::call_guard<release_gil>(),
            "Adds a 48 kHz sink with 1 or 2 channels, Opus frames of 10 or 20 ms, and a volume (0-10).")
        .def("remove_sink", &PyAudioManager::remove_sink, "sink_id"_a, nb::call_guard<release_gil>(),
             "Removes a sink: its routes go, its listeners get a bye, its taps are closed.")
        .def("set_volume", &PyAudioManager::set_sink_volume, "sink_id"_a, "volume"_a,
             nb::call_guard<release_gil>(), "Sets a sink's volume (0-10), applied after the mix.")
        .def("sinks", &PyAudioManager::sink_ids, nb::call_guard<release_gil>(), "The sink ids, sorted.")
        .def(
            "add_source",
            [](PyAudioManager& self, const std::string& source_id, int64_t sample_rate, int64_t channels,
               int64_t buffer_ms, int64_t jitter_ms) {
                SourceConfig c;
                c.sample_rate = narrow(sample_rate, "sample_rate");
                c.channels = narrow(channels, "channels");
                c.buffer_ms = narrow(buffer_ms, "buffer_ms");
                c.jitter_ms = narrow(jitter_ms, "jitter_ms");
                self.add_source(source_id, c);
            },
            "source_id"_a, "sample_rate"_a = 48000, "channels"_a = 1, "buffer_ms"_a = 500, "jitter_ms"_a = 20,
            nb::call_guard<release_gil>(),
            "Adds a source fed by push(): 8-192 kHz, 1-8 channels, resampled to 48 kHz. buffer_ms bounds the "
            "queue (older audio is dropped and counted); in real time a route starts playing once jitter_ms "
            "of audio is queued.")
        .def(
            "add_rtp_source",
            [](PyAudioManager& self, const std::string& source_id, int64_t port, std::string bind_address,
               std::string encoding, std::optional<int64_t> sample_rate64, int64_t channels,
               std::optional<int64_t> payload_type64, int64_t jitter_ms, int64_t buffer_ms, bool fec,
               std::string multicast_interface) {
                // These two decide the default rate below; the rest go straight into the config.
                const std::optional<int> sample_rate = narrow(sample_rate64, "sample_rate");
                const std::optional<int> payload_type = narrow(payload_type64, "payload_type");
                // -1 is the engine's "default" internally; from Python only None means that.
                if (payload_type && *payload_type < 0)
                    throw nb::value_error(("payload_type must be 10, 11 or a dynamic type 96-127 (None: the "
                                           "default), got " + std::to_string(*payload_type)).c_str());
                RtpInputConfig c;
                c.endpoint.bind_address = std::move(bind_address);
                c.endpoint.multicast_interface = std::move(multicast_interface);
                c.endpoint.port = narrow(port, "port");
                std::string e;
                for (char ch : encoding) e.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
                if (e == "l16")
                    c.encoding = RtpEncoding::L16;
                else if (e == "l24")
                    c.encoding = RtpEncoding::L24;
                else if (e == "opus")
                    c.encoding = RtpEncoding::Opus;
                else
                    throw std::invalid_argument("encoding must be 'L16', 'L24' or 'opus', got '" + encoding + "'");
                c.sample_rate = sample_rate.value_or(c.encoding == RtpEncoding::L16 && payload_type &&
                                                             (*payload_type == 10 || *payload_type == 11)
                                                         ? 44100
                                                         : 48000);
                c.channels = narrow(channels, "channels");
                c.payload_type = payload_type.value_or(-1);
                c.target_delay_ms = narrow(jitter_ms, "jitter_ms");
                c.buffer_ms = narrow(buffer_ms, "buffer_ms");
                c.fec = fec;
                return self.add_rtp_source(source_id, c);
            },
            "source_id"_a, nb::kw_only(), "port"_a = 5004, "bind_address"_a = "127.0.0.1", "encoding"_a = "L16",
            "sample_rate"_a = nb::none(), "channels"_a = 2, "payload_type"_a = nb::none(), "jitter_ms"_a = 60,
            "buffer_ms"_a = 500, "fec"_a = false, "multicast_interface"_a = "",
            nb::call_guard<release_gil>(),
            "Adds a source receiving RTP on UDP bind_address:port (0: any free port) and returns the bound port. "
            "encoding 'L16' / 'L24' (big-endian PCM at sample_rate, default 48000; 44100 for payload types 10/11) "
            "or 'opus' (48 kHz clock, 1-2 channels, decoded with libopus, PLC on loss, in-band FEC if fec=True). "
            "payload_type defaults to 10/11 for L16 at 44.1 kHz stereo/mono, else 96; other types are counted "
            "malformed. jitter_ms is the jitter buffer target; buffer_ms bounds the queue. A multicast "
            "bind_address joins that group, on the interface with the IPv4 address multicast_interface (default: "
            "the one the routing table picks). Counters in stats()['inputs'][source_id].")
        .def(
            "add_scream_source",
            [](PyAudioManager& self, const std::string& source_id, int64_t port, std::string bind_address,
               int64_t channels, int64_t jitter_ms, int64_t buffer_ms, std::string multicast_interface) {
                ScreamInputConfig c;
                c.endpoint.bind_address = std::move(bind_address);
                c.endpoint.multicast_interface = std::move(multicast_interface);
                c.endpoint.port = narrow(port, "port");
                c.channels = narrow(channels, "channels");
                c.target_delay_ms = narrow(jitter_ms, "jitter_ms");
                c.buffer_ms = narrow(buffer_ms, "buffer_ms");
                return self.add_scream_source(source_id, c);
            },
            "source_id"_a, nb::kw_only(), "port"_a = 4010, "bind_address"_a = "127.0.0.1", "channels"_a = 2,
            "jitter_ms"_a = 60, "buffer_ms"_a = 500, "multicast_interface"_a = "",
            nb::call_guard<release_gil>(),
            "Adds a source receiving the Scream UDP stream (5-byte header, then little-endian PCM; any rate, "
            "16/24/32 bit, 1-8 channels, resampled to 48 kHz; wire channel c feeds channel c of `channels`, "
            "extra wire channels dropped, missing ones repeated) on bind_address:port "
            "(0: any free port; a multicast address such as 239.255.77.77 joins that group, on the interface "
            "with the IPv4 address multicast_interface, by default the one the routing table picks). Returns the "
            "port.")
        .def("add_tone_source", &PyAudioManager::add_tone_source, "source_id"_a, "frequency_hz"_a = 440.0,
             "amplitude"_a = 0.25, nb::call_guard<release_gil>(), "Adds a mono sine-tone source.")
        .def(
            "add_noise_source",
            [](PyAudioManager& self, const std::string& source_id, double amplitude, nb::int_ seed) {
                // Any Python int: nanobind's uint64 refuses a negative one with its signature dump.
                const unsigned long long value = PyLong_AsUnsignedLongLong(seed.ptr());
                if (value == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
                    PyErr_Clear();
                    throw nb::value_error(
                        ("seed must be 0 to 2**64-1, got " + nb::cast<std::string>(nb::str(seed))).c_str());
                }
                release_gil released;
                self.add_noise_source(source_id, amplitude, static_cast<uint64_t>(value));
            },
            "source_id"_a, "amplitude"_a = 0.1, "seed"_a = 0, "Adds a mono white-noise source.")
        .def("remove_source", &PyAudioManager::remove_source, "source_id"_a,
             nb::call_guard<release_gil>(), "Removes a source and every route from it.")
        .def("sources", &PyAudioManager::source_ids, nb::call_guard<release_gil>(),
             "The source ids, sorted.")
        .def("source_serial", &PyAudioManager::source_serial, "source_id"_a,
             nb::call_guard<release_gil>(),
             "A number unique to this source in the process: a source removed and added again under the same "
             "id gets another, so a feeder thread can tell it is no longer feeding the source it started with.")
        .def("connect", &PyAudioManager::connect, "source_id"_a, "sink_id"_a, "gain"_a = 1.0,
             nb::call_guard<release_gil>(), "Routes a source into a sink with a gain (0-10).")
        .def("disconnect", &PyAudioManager::disconnect, "source_id"_a, "sink_id"_a,
             nb::call_guard<release_gil>(), "Removes the route from a source into a sink.")
        .def("set_gain", &PyAudioManager::set_gain, "source_id"_a, "sink_id"_a, "gain"_a,
             nb::call_guard<release_gil>(), "Sets the gain (0-10) of the route from a source into a sink.")
        .def("push", &push_samples, "source_id"_a, "samples"_a, nb::kw_only(), "source_serial"_a = nb::none(),
             "Queues PCM for a source: a numpy array of int16 (x/32768), int32 (x/2^31) or float32, shaped "
             "(frames, channels) or 1-D interleaved. Never blocks; a full queue drops its oldest audio. "
             "With source_serial (from source_serial()), only into that source: if the id now names another, "
             "UnknownSourceError and nothing is queued.")
        .def(
            "flush",
            [](PyAudioManager& self, const std::string& source_id, const std::optional<nb::int_>& source_serial) {
                const std::optional<uint64_t> serial = checked_serial(source_serial);
                release_gil released;
                self.flush(source_id, serial);
            },
            "source_id"_a, nb::kw_only(), "source_serial"_a = nb::none(),
            "Plays out everything pushed so far, for the end of a clip or stream: the resampler's last "
            "few milliseconds, and audio still short of jitter_ms. More may be pushed afterwards. "
            "source_serial as for push().")
        .def("render", &render_frames, "sink_id"_a, "frames"_a, "out"_a = nb::none(),
             nb::sig("def render(self, sink_id: str, frames: int, out: numpy.typing.NDArray[numpy.float32] | None = None) "
                     "-> numpy.typing.NDArray[numpy.float32]"),
             "Manual clock only: mixes the sink's next frames and returns them as float32 (frames, channels), "
             "in `out` when given (same shape, C-contiguous float32).")
        .def(
            "open_tap",
            [](PyAudioManager& self, const std::string& sink_id, double seconds) {
                return self.open_tap(sink_id, seconds);
            },
            "sink_id"_a, "seconds"_a = 2.0, nb::call_guard<release_gil>(),
            "A PcmTap receiving the sink's mixed output from now on, holding up to `seconds` unread.")
        .def(
            "stats",
            [](PyAudioManager& self) {
                EngineStats stats;
                {
                    release_gil released;
                    stats = self.stats();
                }
                return stats_to_dict(stats);
            },
            nb::sig("def stats(self) -> dict[str, typing.Any]"),
            "The engine's state as a plain dict: each sink (settings, counters, routes, taps, listeners "
            "with their WebRTC stats), each source (counters, the sinks it feeds), each network input's "
            "receive counters, and the listener and peer totals. README.md lists the keys.")
        .def("shutdown", &PyAudioManager::shutdown_from_python,
             "Stops every clock and listener and joins the engine's threads. Idempotent.")
        .def("__enter__", [](PyAudioManager& self) -> PyAudioManager& { return self; }, nb::rv_policy::reference)
        .def(
            "__exit__",
            [](PyAudioManager& self, nb::handle, nb::handle, nb::handle) { self.shutdown_from_python(); },
            "exc_type"_a.none(), "exc_value"_a.none(), "traceback"_a.none());
    bind_signaling(cls);
}

void bind_pcm_tap(nb::module_& m) {
    nb::class_<PcmTap>(m, "PcmTap", "A sink's mixed output, as it is mixed. Read it before it fills up.")
        .def("read", &read_tap, "max_frames"_a = nb::none(),
             "Returns up to max_frames (default: all available) of the oldest unread frames as float32 "
             "(frames, channels).")
        .def_prop_ro("available", [](const PcmTap& tap) { return usable(tap).available(); }, "Unread frames.")
        .def_prop_ro("dropped_frames", [](const PcmTap& tap) { return usable(tap).dropped_frames(); },
                     "Frames lost because the tap was full.")
        .def_prop_ro("channels", &PcmTap::channels, "Channels of each frame read(): the sink's.")
        .def_prop_ro("closed", &PcmTap::closed,
                     "True once no more audio will arrive: after close(), the sink's removal or shutdown(). "
                     "Unread frames stay readable.")
        .def("close", &PcmTap::close, "Stops receiving audio; unread frames stay readable.")
        .def("__enter__", [](PcmTap& self) -> PcmTap& { return self; }, nb::rv_policy::reference)
        .def(
            "__exit__", [](PcmTap& self, nb::handle, nb::handle, nb::handle) { self.close(); },
            "exc_type"_a.none(), "exc_value"_a.none(), "traceback"_a.none());
}

}  // namespace sinkcast::bindings
