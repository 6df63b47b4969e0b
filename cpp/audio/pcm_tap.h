// A tap on a sink's mixed output: the mixer writes every period into it, a
// reader (Python, a recorder, a meter) drains it at its own pace. A reader
// that falls behind by more than the capacity loses the oldest audio, counted.
#pragma once

#include <atomic>

#include "audio/frame_ring.h"
#include "engine/fork_guard.h"

namespace sinkcast {

class PcmTap {
public:
    PcmTap(int channels, size_t capacity_frames);
    ~PcmTap();

    int channels() const { return ring_.channels(); }
    size_t capacity_frames() const { return ring_.capacity_frames(); }

    void write(const float* frames, size_t count);
    // Copies up to max_frames of the oldest unread frames into out; returns how many.
    size_t read(float* out, size_t max_frames);
    size_t available() const { return ring_.buffered_frames(&cursor_); }
    uint64_t dropped_frames() const { return ring_.total_dropped_frames(); }

    void close() { closed_.store(true, std::memory_order_release); }
    bool closed() const { return closed_.load(std::memory_order_acquire) || made_before_fork(); }

    // In a child of fork() (engine/fork_guard.h): the ring's lock may have been
    // held by the parent's mixer at the fork, and stays locked here for good, so
    // a tap made before it must not be read (the bindings refuse) nor detach
    // from its ring (the destructor leaves it).
    bool made_before_fork() const { return fork_generation_ != fork_generation(); }

private:
    FrameRing ring_;
    ReadCursor cursor_;
    std::atomic<bool> closed_{false};
    const uint64_t fork_generation_ = fork_generation();
};

}  // namespace sinkcast
