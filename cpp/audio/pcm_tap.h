// A tap on a sink's mixed output: the mixer writes every period into it, a
// reader (Python, a recorder, a meter) drains it at its own pace. A reader
// that falls behind by more than the capacity loses the oldest audio, counted.
#pragma once

#include <atomic>

#include "audio/frame_ring.h"

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
    bool closed() const { return closed_.load(std::memory_order_acquire); }

private:
    FrameRing ring_;
    ReadCursor cursor_;
    std::atomic<bool> closed_{false};
};

}  // namespace sinkcast
