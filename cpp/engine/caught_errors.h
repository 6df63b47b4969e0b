// What an engine thread (a sink's clock, a network input's receiver) caught
// instead of dying of it: an exception leaving a std::thread ends the whole
// process, interpreter included. The thread counts it, keeps the text of the
// last one for stats(), and carries on with its next period or packet.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>

namespace sinkcast {

class CaughtErrors {
public:
    // Call from a catch block.
    void record_current() noexcept {
        try {
            throw;
        } catch (const std::exception& e) {
            record(e.what());
        } catch (...) {
            record("unknown exception");
        }
    }

    uint64_t count() const { return count_.load(std::memory_order_relaxed); }
    std::string last() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return last_;
    }

private:
    void record(const char* what) noexcept {
        count_.fetch_add(1, std::memory_order_relaxed);
        try {
            std::lock_guard<std::mutex> lock(mutex_);
            last_ = what;
        } catch (...) {
            // Out of memory for the text: the count still says it happened.
        }
    }

    std::atomic<uint64_t> count_{0};
    mutable std::mutex mutex_;
    std::string last_;
};

}  // namespace sinkcast
