// The GIL released around engine work, as nb::gil_scoped_release does, made
// safe for daemon threads at interpreter exit.
//
// CPython before 3.14 ends a thread that asks for the GIL back while the
// interpreter finalizes with pthread_exit(). From the destructor of a guard
// (noexcept) that unwinding calls std::terminate: a daemon thread inside
// render() when the program ended aborted the process ("terminate called
// without an active exception"). So the engine's exit hook calls
// finish_released_calls(): it waits until every thread has its GIL back,
// and from then on these guards keep the GIL (nobody is left to give it to).
// A call still out when that wait gives up parks its thread when it ends,
// until the process is gone, instead of asking for the GIL and being unwound.
#pragma once

#include <Python.h>

namespace sinkcast::bindings {

class release_gil {
public:
    release_gil();
    ~release_gil();
    release_gil(const release_gil&) = delete;
    release_gil& operator=(const release_gil&) = delete;

private:
    PyThreadState* state_ = nullptr;  // null: the GIL was kept
};

// Called with the GIL held, from the exit hook: makes every later release_gil
// keep the GIL, then waits (up to timeout_s, with the GIL released) for calls
// that released it to have it back. Calls still out after that park when they
// end. A forked child starts afresh (nothing is out in it).
void finish_released_calls(double timeout_s);

// True once finish_released_calls() has begun: the program is ending, and a
// thread that gives the GIL away may not get it back.
bool python_is_exiting();

// Never returns. For a thread the ending interpreter would otherwise unwind
// through frames that cannot take it (CPython 3.14 hangs such threads too).
[[noreturn]] void park_until_the_process_ends();

}  // namespace sinkcast::bindings
