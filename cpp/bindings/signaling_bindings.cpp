// The seed's two signaling methods and the trampoline that carries engine
// messages into Python: on the engine's dispatcher thread it acquires the
// GIL, calls the callback, and hands any Python error to sys.unraisablehook;
// nothing ever propagates back into the engine or libdatachannel.
#include <nanobind/nanobind.h>

#include <cstring>
#include <nanobind/stl/string.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/vector.h>

#include "bindings/py_audio_manager.h"
#include "bindings/release_gil.h"
#include "engine/fork_guard.h"
#include "webrtc/signaling_message.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace sinkcast::bindings {

namespace {

bool interpreter_is_usable() {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsInitialized() && !Py_IsFinalizing();
#else
    return Py_IsInitialized() && !_Py_IsFinalizing();
#endif
}

class PythonSignalingHandler final : public SignalingHandler {
public:
    explicit PythonSignalingHandler(nb::object callback) : callback_(std::move(callback)) {}

    ~PythonSignalingHandler() override {
        if (!interpreter_is_usable()) {
            (void)callback_.release();  // too late to decref safely; the process is ending
            return;
        }
        with_gil_or_park([this] { callback_.reset(); });
    }

    void deliver(const SignalingMessage& m) override {
        // Past the exit hook, a thread may shut an engine down keeping the GIL
        // (release_gil): waiting for it here would never end.
        if (!interpreter_is_usable() || python_is_exiting()) return;
        with_gil_or_park([&] { deliver_with_gil(m); });
    }

    // For the garbage collector, with the GIL held.
    int visit_callback(visitproc visit, void* arg) const {
        Py_VISIT(callback_.ptr());
        return 0;
    }
    // Breaks a cycle through the callback: the engine is garbage, and from now
    // on its messages are dropped. The caller releases it.
    nb::object take_callback() { return std::move(callback_); }

private:
    void deliver_with_gil(const SignalingMessage& m) {
        // Checked again now: the wait for the GIL can be long, and the call that
        // replaced this message's session needs the GIL to return to Python. So
        // once that call has returned, nothing of the old session starts here.
        // Should such a call be under way, its outcome decides (and it needs
        // neither the GIL nor this thread to end). Not nanobind's guard: its
        // destructor is noexcept, and taking the GIL back may end the thread.
        if (m.session && m.session->undecided()) {
            PyThreadState* state = PyEval_SaveThread();
            m.session->wait_until_settled();
            PyEval_RestoreThread(state);
        }
        if (m.stale()) return;
        // Our own reference for the call: the garbage collector may drop the
        // handler's (take_callback) while the callback has released the GIL.
        nb::object callback = callback_;
        if (!callback.is_valid()) return;
        const uint64_t generation = fork_generation();
        try {
            nb::str target(m.target.data(), m.target.size()), type(m.type.data(), m.type.size()),
                message(m.message.data(), m.message.size());
            // Called raw: the callback may be running as the interpreter
            // finalizes, and this thread is then parked inside the call, before
            // any of these objects would be freed without the GIL.
            PyObject* args[] = {target.ptr(), type.ptr(), message.ptr()};
            PyObject* result =
                call_python_or_park([&] { return PyObject_Vectorcall(callback.ptr(), args, 3, nullptr); });
            if (result == nullptr) throw nb::python_error();
            Py_DECREF(result);
        } catch (nb::python_error& e) {
            if (fork_generation() != generation) end_forked_child(&e);
            // The context object names where it happened; err_msg stays Python's default.
            e.discard_as_unraisable("sinkcast WebRTC signaling callback");
        } catch (const std::exception& e) {
            // Not expected (a message that is not valid UTF-8 raises UnicodeDecodeError above)
            PyObject* text = PyUnicode_DecodeUTF8(e.what(), static_cast<Py_ssize_t>(std::strlen(e.what())), "replace");
            PyErr_SetObject(PyExc_RuntimeError, text ? text : Py_None);
            Py_XDECREF(text);
            PyErr_WriteUnraisable(callback.ptr());
        }
        if (fork_generation() != generation) end_forked_child(nullptr);
    }

    // The callback forked, and this is the child: its one thread is this
    // dispatcher thread, whose engine exists only in the parent. Nothing here
    // can go on delivering (the next GIL acquisition aborts Python, as its
    // thread state was made the child's main one), so the child ends as a
    // program ends once its main code is done: with the SystemExit the
    // callback raised, an uncaught exception's traceback and status 1, or 0.
    [[noreturn]] static void end_forked_child(nb::python_error* raised) {
        if (raised == nullptr) Py_Exit(0);
        raised->restore();
        PyErr_Print();  // exits for a SystemExit, with its code; prints any other error
        Py_Exit(1);
    }

    nb::object callback_;
};

// An engine and its callback in a cycle (a bound method of an object that
// holds the engine, a closure, AsyncSignaling left open) were never freed: the
// engine keeps the callback in C++, where the collector could not see it, so
// its threads and listeners lived until exit. Now the collector sees the
// callback through the engine (traverse). Before it clears anything it
// finalizes the garbage, and the engine's finalizer lets go of the callback
// and then shuts the engine down.
//
// In that order, so that no Python code runs while the finalizer waits: the
// collector runs on whatever thread allocated at that moment, which may hold
// a lock the callback takes (logging's, the application's own), and a
// shutdown that waited for the callback to deliver the byes would wait for
// ever. So the byes of an engine dropped this way reach no callback (one
// dropped by its last reference still delivers them: that moment is the
// program's choice). Nor does that shutdown wait for a callback already
// running: the collector may have run other finalizers first, and one of them
// let the dispatcher take the GIL and start a delivery that now waits for
// that same lock. The delivery holds a reference to the callback: if that
// refers to the engine, the collector finds the engine alive again after its
// finalizer, and a later collection frees it once the delivery has ended;
// if not, the engine is freed now, and the let-go thread touches nothing of
// it. The exit hook waits for such a delivery (module.cpp).
// The earlier try at this (reliability.md, items 12 and 15) shut down in
// tp_clear, where a bye could reach a half-cleared object.
//
// The collector reads the callback from the handler the engine holds, under
// the engine's lock on it: a copy kept on the Python side went stale when two
// threads set callbacks at once, and left engines uncollected.

// inspect.iscoroutinefunction(callback): Python code, so called raw
// (call_python_or_park). Raises what it raised.
bool is_async_function(PyObject* callback) {
    const int answer = call_python_or_park([callback]() -> int {
        PyObject* inspect = PyImport_ImportModule("inspect");
        if (inspect == nullptr) return -1;
        PyObject* result = PyObject_CallMethod(inspect, "iscoroutinefunction", "O", callback);
        Py_DECREF(inspect);
        if (result == nullptr) return -1;
        const int truth = PyObject_IsTrue(result);
        Py_DECREF(result);
        return truth;
    });
    if (answer < 0) throw nb::python_error();
    return answer == 1;
}

// Only a Python object that owns its engine holds the callback. The
// process-wide default engine (get_instance()) is C++'s and outlives any of its
// Python wrappers: a wrapper collected with a callback that refers to it must
// not shut that engine down, nor take its callback.
bool owns_its_engine(PyObject* self) {
    auto [ready, destruct] = nb::inst_state(self);
    return ready && destruct;
}

int audio_manager_traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(Py_TYPE(self));  // an instance holds its heap type
    if (!owns_its_engine(self)) return 0;
    int result = 0;
    nb::inst_ptr<PyAudioManager>(self)->with_signaling_handler([&](SignalingHandler* handler) {
        if (auto* python = dynamic_cast<PythonSignalingHandler*>(handler)) result = python->visit_callback(visit, arg);
    });
    return result;
}

void audio_manager_finalize(PyObject* self) {
    if (!owns_its_engine(self)) return;
    // A Python subclass's deallocation calls this too, with the count at 1;
    // the collector holds a reference of its own beside the cycle's. That is
    // a drop by the last reference: the destructor shuts down, byes included.
    if (Py_REFCNT(self) == 1) return;
    nb::error_scope keep;  // a finalizer leaves the current exception as it found it
    auto* engine = nb::inst_ptr<PyAudioManager>(self);
    engine->forget_python_callback();  // a delivery waiting for the GIL now finds none
    try {
        release_gil released;  // engine threads may need the GIL to finish
        engine->shutdown_without_waiting_for_callback();
    } catch (nb::python_error& e) {
        e.discard_as_unraisable("sinkcast AudioManager shutting down as garbage");
    } catch (...) {
        // Nothing to report to; the engine's destructor tries again.
    }
}

int audio_manager_clear(PyObject* self) {
    if (owns_its_engine(self)) nb::inst_ptr<PyAudioManager>(self)->forget_python_callback();
    return 0;
}

PyType_Slot gc_slots[] = {
    {Py_tp_traverse, reinterpret_cast<void*>(audio_manager_traverse)},
    {Py_tp_finalize, reinterpret_cast<void*>(audio_manager_finalize)},
    {Py_tp_clear, reinterpret_cast<void*>(audio_manager_clear)},
    {0, nullptr},
};

}  // namespace

PyType_Slot* audio_manager_gc_slots() { return gc_slots; }

void PyAudioManager::forget_python_callback() {
    nb::object dropped;  // released after the lock: its finalizer may run any code, set a callback too
    with_signaling_handler([&](SignalingHandler* handler) {
        if (auto* python = dynamic_cast<PythonSignalingHandler*>(handler)) dropped = python->take_callback();
    });
}

void bind_signaling(nb::class_<PyAudioManager>& cls) {
    cls.def(
           "set_python_webrtc_signaling_callback",
           [](PyAudioManager& self, nb::object callback) {
               std::shared_ptr<SignalingHandler> handler;
               if (!callback.is_none()) {
                   if (!PyCallable_Check(callback.ptr()))
                       throw nb::type_error("the signaling callback must be callable(target, type, message) or None");
                   // An async def would only make a coroutine that nothing awaits: the
                   // messages would be lost, with a RuntimeWarning at exit at best.
                   if (is_async_function(callback.ptr()))
                       throw nb::type_error(
                           "the signaling callback is an async function, which the engine cannot await (it "
                           "calls it on its own thread); use sinkcast.aio.AsyncSignaling to receive messages "
                           "in an asyncio loop, or a plain function");
                   handler = std::make_shared<PythonSignalingHandler>(std::move(callback));
               } else if (self.closed()) {
                   // Nothing to clear, but a shutdown under way on another thread may
                   // still be running the callback: wait for it, as shutdown() does.
                   self.shutdown_from_python();
                   return;
               }
               // May wait for a callback in flight, which needs the GIL. release_gil: a
               // daemon thread here as the program ends must not be unwound asking for
               // the GIL back (past the exit hook it keeps it, and no delivery needs it).
               release_gil released;
               self.ensure_open_public();
               self.set_signaling_handler(std::move(handler));
           },
           "callback"_a.none(),
           nb::sig("def set_python_webrtc_signaling_callback(self, callback: "
                   "collections.abc.Callable[[str, str, str], object] | None) -> None"),
           "Sets the function that receives the engine's signaling messages, callback(target, type, message), "
           "called on an engine thread. None clears it. Once this returns the previous callback never runs "
           "again. Exceptions it raises go to sys.unraisablehook.")
        .def("handle_incoming_webrtc_signaling_message", &PyAudioManager::handle_incoming_signaling, "target"_a,
             "type"_a, "message"_a, nb::call_guard<release_gil>(),
             "Routes a signaling message from a listener to its session. target is '<sink_id>' (the sink's "
             "default session) or '<sink_id>/<listener_id>'; type is offer, answer, candidate, bye or "
             "request_offer. Raises UnknownSinkError or SignalingError; then nothing has changed, except that "
             "an answer refused once partly applied closes its session (with a bye).")
        .def("listeners", &PyAudioManager::listener_targets, nb::call_guard<release_gil>(),
             "The targets of the open WebRTC sessions, sorted.")
        .def(
            "candidate_problem",
            [](const PyAudioManager& self, const std::string& message) -> std::optional<std::string> {
                std::string problem = candidate_problem(message, self.config().allow_mdns_candidates);
                if (problem.empty()) return std::nullopt;
                return problem;
            },
            "message"_a,
            "Why a session of this engine would refuse this candidate message (the SignalingError's text), or "
            "None; nothing is applied. For a server that checks a whole trickle fragment before sending any of it.");
}

}  // namespace sinkcast::bindings
