#include "engine/fork_guard.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <limits>
#include <string>

#include "webrtc/signaling_message.h"

namespace sinkcast {

namespace {

std::atomic<uint64_t> g_fork_generation{0};

// Registered when the module is loaded, so that every later fork() is counted.
const bool g_counting_forks = [] {
    pthread_atfork(nullptr, nullptr, [] { g_fork_generation.fetch_add(1, std::memory_order_relaxed); });
    return true;
}();

constexpr uint64_t kNotStarted = std::numeric_limits<uint64_t>::max();
std::atomic<uint64_t> g_webrtc_generation{kNotStarted};
std::atomic<pid_t> g_webrtc_pid{0};

}  // namespace

uint64_t fork_generation() { return g_fork_generation.load(std::memory_order_relaxed); }

void claim_webrtc_for_this_process() {
    const uint64_t now = fork_generation();
    uint64_t started = kNotStarted;
    if (g_webrtc_generation.compare_exchange_strong(started, now)) {
        g_webrtc_pid.store(getpid());
        return;
    }
    if (started == now) return;
    throw LocalResourceError("WebRTC was started in process " + std::to_string(g_webrtc_pid.load()) +
                             ", and this process was forked from it: libdatachannel's threads run only there, so "
                             "no listener can be opened here. Open the first listener after forking, or start this "
                             "process with multiprocessing's 'spawn' or 'forkserver' method");
}

}  // namespace sinkcast
