#include "bindings/release_gil.h"

#include <nanobind/nanobind.h>

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace sinkcast::bindings {

namespace {

// Calls whose GIL is released and not yet back. Read and written with the GIL
// held, except the decrement, which follows getting it back.
std::atomic<int> g_out{0};
// Set by finish_released_calls() with the GIL held: guards made after it keep the GIL.
std::atomic<bool> g_exiting{false};
// Calls deciding to take the GIL back, and a bit for "the exit hook gave up
// waiting". One word, so that a returning call and a giving-up hook cannot
// both miss each other: either the call is counted before the hook gives up
// (and the hook waits for it), or it sees the bit and never asks for the GIL.
constexpr int kGaveUp = 1 << 30;
std::atomic<int> g_returning{0};

// With the GIL released, so that calls on their way back can have it.
template <typename Done, typename TimePoint>
void wait_without_the_gil(Done done, TimePoint give_up) {
    while (!done() && std::chrono::steady_clock::now() < give_up) {
        PyThreadState* state = PyEval_SaveThread();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        PyEval_RestoreThread(state);
    }
}

// A forked child has none of the parent's other threads: the calls they had
// out never come back, and nothing of an exit hook has run in it.
const bool g_reset_in_forked_children = [] {
    pthread_atfork(nullptr, nullptr, [] {
        g_out.store(0);
        g_exiting.store(false);
        g_returning.store(0);
    });
    return true;
}();

}  // namespace

release_gil::release_gil() {
    if (g_exiting.load(std::memory_order_acquire)) return;
    g_out.fetch_add(1, std::memory_order_acq_rel);
    state_ = PyEval_SaveThread();
}

release_gil::~release_gil() {
    if (state_ == nullptr) return;
    int seen = g_returning.load(std::memory_order_acquire);
    do {
        // The exit hook stopped waiting: finalization may begin at any time,
        // and asking for the GIL then would unwind this thread through here.
        if (seen & kGaveUp) park_until_the_process_ends();
    } while (!g_returning.compare_exchange_weak(seen, seen + 1, std::memory_order_acq_rel));
    PyEval_RestoreThread(state_);
    g_out.fetch_sub(1, std::memory_order_acq_rel);
    g_returning.fetch_sub(1, std::memory_order_acq_rel);
}

void park_until_the_process_ends() {
    // What the parked frames hold (a callback, the engine it refers to) is never
    // freed: nanobind's leak report at exit would blame the bindings for it. A
    // plain flag store, safe without the GIL.
    nanobind::set_leak_warnings(false);
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

bool python_is_exiting() { return g_exiting.load(std::memory_order_acquire); }

void wait_with_the_gil_released(const std::function<bool()>& done, double timeout_s) {
    wait_without_the_gil(done, std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s));
}

void finish_released_calls(double timeout_s) {
    g_exiting.store(true, std::memory_order_release);  // from now on the count only goes down
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    wait_without_the_gil([] { return g_out.load(std::memory_order_acquire) == 0; }, give_up);
    if (g_out.load(std::memory_order_acquire) == 0) return;
    // Still out (a long call): those not yet on their way back will park; those
    // already are get the GIL in a moment, before finalization can begin.
    g_returning.fetch_or(kGaveUp, std::memory_order_acq_rel);
    wait_without_the_gil([] { return (g_returning.load(std::memory_order_acquire) & ~kGaveUp) == 0; },
                         std::chrono::steady_clock::time_point::max());
}

}  // namespace sinkcast::bindings
