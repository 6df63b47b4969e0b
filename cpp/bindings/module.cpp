// The native module sinkcast._sinkcast. The Python API is python/sinkcast/,
// which re-exports these classes with the exceptions and the pure-Python parts.
#include <nanobind/nanobind.h>

#include <nanobind/stl/string.h>

#include <pthread.h>

#include "audio/mixer_benchmark.h"
#include "codec/opus_benchmark.h"
#include "webrtc/receive_probe.h"
#include "bindings/errors.h"
#include "bindings/numpy_array.h"
#include "bindings/py_audio_manager.h"
#include "bindings/release_gil.h"
#include "engine/signaling_dispatcher.h"

namespace nb = nanobind;
using namespace nb::literals;

NB_MODULE(_sinkcast, m) {
    m.doc() = "sinkcast's native engine (C++): mixer, Opus encoder, WebRTC sender.";
    sinkcast::bindings::import_numpy_api();
    sinkcast::bindings::register_error_translator();
    sinkcast::bindings::bind_pcm_tap(m);
    sinkcast::bindings::bind_audio_manager(m);
    // Live engines stop before the interpreter finalizes, so no engine thread
    // calls into a dying interpreter; a dispatcher let go inside a callback
    // that outlasts the wait below is parked if it asks for the GIL again.
    nb::module_::import_("atexit").attr("register")(
        nb::cpp_function(
            [] {
                sinkcast::bindings::stop_making_engines();  // an engine made after this would outlive the hook
                sinkcast::bindings::shutdown_all_managers();
                // Callbacks still running on the dispatcher of an engine the
                // cycle collector shut down (it does not wait for them).
                sinkcast::bindings::wait_with_the_gil_released(
                    [] { return sinkcast::SignalingDispatcher::let_go_running() == 0; }, 10.0);
                sinkcast::bindings::finish_released_calls(10.0);  // daemon threads still in a call
                // Threads still running are never unwound: what their frames
                // hold (an engine, its functions) is never freed, and
                // nanobind's leak report would blame the bindings for it.
                if (nb::cast<int>(nb::module_::import_("threading").attr("active_count")()) > 1 ||
                    sinkcast::SignalingDispatcher::let_go_running() > 0)
                    nb::set_leak_warnings(false);
            },
            nb::name("_shutdown_all_managers")));
    // In a child of fork(), what the parent's other threads held (an engine a
    // reader thread was using, their frames) is never released: those threads
    // are not there to let go. The engine keeps what it inherited on purpose
    // (engine/fork_guard.h), so nanobind's report of leaked objects at the
    // child's exit would be noise.
    pthread_atfork(nullptr, nullptr, [] { nb::set_leak_warnings(false); });
    m.def(
        "_benchmark_mixer",
        [](int sources, int channels, int periods, int repeats) {
            if (sources < 1 || channels < 1 || channels > 2 || periods < 1 || repeats < 1)
                throw nb::value_error("_benchmark_mixer: sources >= 1, channels 1-2, periods >= 1, repeats >= 1");
            sinkcast::MixerBenchmarkResult r;
            {
                sinkcast::bindings::release_gil released;
                r = sinkcast::benchmark_mixer(sources, channels, periods, repeats);
            }
            nb::dict d;
            d["mixer_ns_per_period"] = r.mixer_ns_per_period;
            d["memcpy_ns_per_period"] = r.memcpy_ns_per_period;
            d["bytes_per_period"] = r.bytes_per_period;
            return d;
        },
        "sources"_a, "channels"_a = 2, "periods"_a = 200, "repeats"_a = 5,
        nb::sig("def _benchmark_mixer(sources: int, channels: int = 2, periods: int = 200, repeats: int = 5) "
                "-> dict[str, float]"),
        "Benchmark helper: ns per 10 ms period of the C++ mixer alone and of memcpy of the same bytes.");
    m.def(
        "_benchmark_opus_encode",
        [](int frames, int bitrate, int complexity, int gap_ms) {
            if (frames < 1 || gap_ms < 0 || gap_ms > 1000)
                throw nb::value_error("_benchmark_opus_encode: frames >= 1, gap_ms 0-1000");
            sinkcast::OpusBenchmarkResult r;
            {
                sinkcast::bindings::release_gil released;
                r = sinkcast::benchmark_opus_encode(frames, bitrate, complexity, gap_ms);
            }
            nb::dict d;
            d["encode_ns_per_frame"] = r.encode_ns_per_frame;
            d["wake_ns_per_frame"] = r.wake_ns_per_frame;
            d["bytes_per_frame"] = r.bytes_per_frame;
            return d;
        },
        "frames"_a, "bitrate"_a = 128000, "complexity"_a = 10, "gap_ms"_a = 0,
        nb::sig("def _benchmark_opus_encode(frames: int, bitrate: int = 128000, complexity: int = 10, "
                "gap_ms: int = 0) -> dict[str, float]"),
        "Benchmark helper: thread CPU per 20 ms stereo frame of sinkcast's Opus encoder, and of each wake-up "
        "when frames are gap_ms apart.");
    nb::class_<sinkcast::ReceiveProbe>(m, "_ReceiveProbe",
                                       "Test utility: a receive-only libdatachannel listener that counts RTP packets.")
        .def(nb::init<const std::string&>(), "bind_address"_a = "127.0.0.1")
        .def("create_offer", &sinkcast::ReceiveProbe::create_offer, "timeout"_a = 5.0,
             nb::call_guard<sinkcast::bindings::release_gil>())
        .def("accept_answer", &sinkcast::ReceiveProbe::accept_answer, "sdp"_a,
             nb::call_guard<sinkcast::bindings::release_gil>())
        .def_prop_ro("packets", &sinkcast::ReceiveProbe::packets)
        .def_prop_ro("bytes", &sinkcast::ReceiveProbe::bytes)
        .def_prop_ro("connected", &sinkcast::ReceiveProbe::connected)
        .def(
            "take_packets",
            [](sinkcast::ReceiveProbe& self) {
                std::vector<sinkcast::ProbePacket> packets;
                {
                    sinkcast::bindings::release_gil released;
                    packets = self.take_packets();
                }
                nb::list out;
                for (const auto& p : packets) out.append(nb::make_tuple(p.arrival_ns, p.size));
                return out;
            },
            nb::sig("def take_packets(self) -> list[tuple[int, int]]"),
            "(arrival monotonic ns, RTP bytes) of each packet since the last call.")
        .def("close", &sinkcast::ReceiveProbe::close, nb::call_guard<sinkcast::bindings::release_gil>());
    m.def("_shutdown_all_managers", &sinkcast::bindings::shutdown_all_managers,
          "Shuts down every live AudioManager (also run at interpreter exit).");
}
