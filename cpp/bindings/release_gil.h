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

#include <functional>

#if defined(__GLIBCXX__)
#include <cxxabi.h>
#endif

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

// Called with the GIL held, from the exit hook: waits until done() (checked
// with the GIL held) or until timeout_s has passed, with the GIL released in
// between, so that the threads it waits for can have it.
void wait_with_the_gil_released(const std::function<bool()>& done, double timeout_s);

// True once finish_released_calls() has begun: the program is ending, and a
// thread that gives the GIL away may not get it back.
bool python_is_exiting();

// Never returns. For a thread the ending interpreter would otherwise unwind
// through frames that cannot take it (CPython 3.14 hangs such threads too).
[[noreturn]] void park_until_the_process_ends();

// Calls f, which runs Python code through the C API with the GIL held and
// makes no object that frees itself (no nb::object): a daemon thread that
// CPython ends there as the program ends is parked at this point. Unwinding
// further would free Python objects of the frames above without the GIL (a
// SIGSEGV), or meet nanobind's noexcept conversions (an abort).
template <typename F>
decltype(auto) call_python_or_park(F&& f) {
#if defined(__GLIBCXX__)
    try {
        return f();
    } catch (abi::__forced_unwind&) {
        park_until_the_process_ends();
    }
#else
    return f();
#endif
}

// Runs f with the GIL on a thread Python did not start (the engine's
// dispatcher). CPython may end the thread while it waits for
// the GIL, or while f runs Python code that gives the GIL away, once the
// interpreter finalizes (a callback still running at exit). Unwinding then
// would release a GIL the thread no longer holds ("Fatal Python error:
// PyGILState_Release"), or meet nanobind's noexcept GIL guard (an abort): the
// thread is parked at that point instead, like park_until_the_process_ends().
template <typename F>
void with_gil_or_park(F&& f) {
#if defined(__GLIBCXX__)
    PyGILState_STATE state{};
    try {
        state = PyGILState_Ensure();
    } catch (abi::__forced_unwind&) {
        park_until_the_process_ends();
    }
    try {
        f();
    } catch (abi::__forced_unwind&) {
        park_until_the_process_ends();
    } catch (...) {
        PyGILState_Release(state);
        throw;
    }
    PyGILState_Release(state);
#else
    PyGILState_STATE state = PyGILState_Ensure();
    f();
    PyGILState_Release(state);
#endif
}

}  // namespace sinkcast::bindings
