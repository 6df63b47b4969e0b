// The AudioManager as Python sees it: the engine plus what only the Python
// side has (the signaling callback and its trampoline live here, not in the
// core, which knows nothing of Python).
#pragma once

#include <nanobind/nanobind.h>

#include "engine/audio_manager.h"

namespace sinkcast::bindings {

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

    // Drops the Python callback of the handler the engine holds (the cycle
    // collector's finalizer and clear): its messages reach no Python code any
    // more. With the GIL.
    void forget_python_callback();

private:
    bool python_alive_ = true;
};

// tp_traverse and tp_clear for AudioManager: the callback is the one Python
// object an engine holds.
PyType_Slot* audio_manager_gc_slots();

void bind_signaling(nanobind::class_<PyAudioManager>& cls);

void bind_audio_manager(nanobind::module_& m);
void bind_pcm_tap(nanobind::module_& m);

// From the exit hook, with the GIL held: from now on making an engine raises
// EngineClosedError, and get_instance() returns the closed default.
void stop_making_engines();

// Shuts down every live manager; registered with atexit so no engine thread
// outlives the interpreter.
void shutdown_all_managers();

}  // namespace sinkcast::bindings
