#include "bindings/release_gil.h"

#include <atomic>
#include <chrono>
#include <thread>

namespace sinkcast::bindings {

namespace {

std::atomic<int> g_released{0};     // calls whose GIL is released, or not yet back
std::atomic<bool> g_exiting{false};  // finish_released_calls() has run

bool finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

}  // namespace

release_gil::release_gil() {
    if (g_exiting.load(std::memory_order_acquire)) return;
    g_released.fetch_add(1, std::memory_order_acq_rel);
    state_ = PyEval_SaveThread();
}

release_gil::~release_gil() {
    if (state_ == nullptr) return;
    // Past the exit hook's wait (it gave up on a slow call): asking for the
    // GIL now would end this thread by unwinding through this destructor.
    if (finalizing())
        for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    PyEval_RestoreThread(state_);
    g_released.fetch_sub(1, std::memory_order_acq_rel);
}

void finish_released_calls(double timeout_s) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (g_released.load(std::memory_order_acquire) > 0 && std::chrono::steady_clock::now() < give_up) {
        PyThreadState* state = PyEval_SaveThread();  // their way back needs it
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        PyEval_RestoreThread(state);
    }
    g_exiting.store(true, std::memory_order_release);
}

}  // namespace sinkcast::bindings
