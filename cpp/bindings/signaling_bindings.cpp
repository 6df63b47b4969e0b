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
        nb::gil_scoped_acquire gil;
        callback_.reset();
    }

    void deliver(const SignalingMessage& m) override {
        if (!interpreter_is_usable()) return;
        nb::gil_scoped_acquire gil;
        // Checked again now: the wait for the GIL can be long, and the call that
        // replaced this message's session needs the GIL to return to Python. So
        // once that call has returned, nothing of the old session starts here.
        // Should such a call be under way, its outcome decides (and it needs
        // neither the GIL nor this thread to end).
        if (m.session && m.session->undecided()) {
            nb::gil_scoped_release released;
            m.session->wait_until_settled();
        }
        if (m.stale()) return;
        const uint64_t generation = fork_generation();
        try {
            callback_(m.target, m.type, m.message);
        } catch (nb::python_error& e) {
            if (fork_generation() != generation) end_forked_child(&e);
            // The context object names where it happened; err_msg stays Python's default.
            e.discard_as_unraisable("sinkcast WebRTC signaling callback");
        } catch (const std::exception& e) {
            // e.g. a message that is not valid UTF-8 could not become a str
            PyObject* text = PyUnicode_DecodeUTF8(e.what(), static_cast<Py_ssize_t>(std::strlen(e.what())), "replace");
            PyErr_SetObject(PyExc_RuntimeError, text ? text : Py_None);
            Py_XDECREF(text);
            PyErr_WriteUnraisable(callback_.ptr());
        }
        if (fork_generation() != generation) end_forked_child(nullptr);
    }

private:
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

}  // namespace

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
                   if (nb::cast<bool>(nb::module_::import_("inspect").attr("iscoroutinefunction")(callback)))
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
               nb::gil_scoped_release released;  // may wait for a callback in flight, which needs the GIL
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
