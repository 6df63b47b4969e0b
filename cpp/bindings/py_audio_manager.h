// The AudioManager as Python sees it: the engine plus what only the Python
// side has (the signaling callback and its trampoline live here, not in the
// core, which knows nothing of Python).
#pragma once

#include <nanobind/nanobind.h>

#include <memory>

#include "engine/audio_manager.h"

namespace sinkcast::bindings {

class PythonSignalingHandler;  // signaling_bindings.cpp

class PyAudioManager : public AudioManager {
public:
    explicit PyAudioManager(ManagerConfig config) : AudioManager(std::move(config)) {}
    ~PyAudioManager() override;

    // Shuts the engine down with the GIL released (engine threads may need it
    // to finish), then drops the Python objects the engine held. Idempotent.
    void shutdown_from_python();
    void ensure_open_public() const { ensure_open(); }

    // False from the start of the destructor on: its Python object is being
    // deallocated, so nothing may take a new reference to it. Read with the GIL.
    bool python_alive() const { return python_alive_; }

    // The handler carrying the Python callback the engine was last given, kept
    // here too so the garbage collector can see the callback through the
    // engine (a callback that refers back to its engine makes a cycle). Read
    // and written with the GIL held only.
    PythonSignalingHandler* python_handler() const { return python_handler_.get(); }
    void set_python_handler(std::shared_ptr<PythonSignalingHandler> handler) { python_handler_ = std::move(handler); }

private:
    bool python_alive_ = true;
    std::shared_ptr<PythonSignalingHandler> python_handler_;
};

// tp_traverse and tp_clear for AudioManager: the callback is the one Python
// object an engine holds.
PyType_Slot* audio_manager_gc_slots();

void bind_signaling(nanobind::class_<PyAudioManager>& cls);

void bind_audio_manager(nanobind::module_& m);
void bind_pcm_tap(nanobind::module_& m);

// Shuts down every live manager; registered with atexit so no engine thread
// outlives the interpreter.
void shutdown_all_managers();

}  // namespace sinkcast::bindings
