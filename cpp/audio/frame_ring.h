// A fixed-size ring of interleaved float32 frames with one writer side and
// any number of independent readers (one per route of a source).
//
// Writing never blocks and never fails: when a reader lags by more than the
// capacity, its oldest frames are dropped and counted against it. Each reader
// is a ReadCursor owned by its route; the ring only keeps pointers to the
// registered cursors so it can move them when it overwrites their data.
//
// All members lock one short mutex; nothing inside allocates after
// construction except attach() (called on connect, never on the mixer path).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace sinkcast {

struct ReadCursor {
    uint64_t position = 0;      // absolute frame index of the next frame to read
    bool primed = false;        // jitter prebuffer reached since the last underrun
    // Written under the ring's lock by the pushing thread, read by stats() from
    // any thread: atomic, so that read needs no lock and is no data race.
    std::atomic<uint64_t> dropped_frames{0};  // frames overwritten before this reader got them
    std::atomic<uint64_t> overruns{0};        // times that happened
};

class FrameRing {
public:
    FrameRing(size_t capacity_frames, int channels);

    size_t capacity_frames() const { return capacity_; }
    int channels() const { return channels_; }

    // Registers a reader that starts at the current write position (new audio only).
    void attach(ReadCursor* cursor);
    void detach(ReadCursor* cursor);

    // Appends frames. `fill(dst, frames)` writes `frames` interleaved frames into dst;
    // it is called once or twice (when the write wraps) with the ring lock held.
    template <typename Fill>
    void write(size_t frames, Fill&& fill) {
        std::lock_guard<std::mutex> lock(mutex_);
        // Only the newest `capacity_` frames can survive a write this large.
        size_t skip = frames > capacity_ ? frames - capacity_ : 0;
        size_t remaining = frames - skip;
        uint64_t start = write_position_ + skip;
        size_t offset = skip;
        while (remaining > 0) {
            size_t slot = static_cast<size_t>(start % capacity_);
            size_t run = std::min(remaining, capacity_ - slot);
            fill(data_.data() + slot * channels_, offset, run);
            start += run;
            offset += run;
            remaining -= run;
        }
        write_position_ += frames;
        drop_overwritten_locked();
    }

    // Calls `visit(src, frames)` for the up to two contiguous runs of the next
    // `frames` frames available to `cursor`, consuming them. Returns how many
    // frames were consumed (< frames when the reader is starved). Readers wait
    // for `prebuffer_frames` after every underrun before they consume again.
    template <typename Visit>
    size_t read(ReadCursor* cursor, size_t frames, size_t prebuffer_frames, Visit&& visit) {
        std::lock_guard<std::mutex> lock(mutex_);
        uint64_t available = write_position_ - cursor->position;
        if (!cursor->primed) {
            if (available < prebuffer_frames || available == 0) return 0;
            cursor->primed = true;
        }
        size_t take = static_cast<size_t>(std::min<uint64_t>(available, frames));
        size_t done = 0;
        while (done < take) {
            size_t slot = static_cast<size_t>(cursor->position % capacity_);
            size_t run = std::min(take - done, capacity_ - slot);
            visit(data_.data() + slot * channels_, done, run);
            cursor->position += run;
            done += run;
        }
        if (take < frames) cursor->primed = false;  // starved: prebuffer again
        return take;
    }

    size_t buffered_frames(const ReadCursor* cursor) const;
    uint64_t total_overruns() const;
    uint64_t total_dropped_frames() const;

private:
    void drop_overwritten_locked();

    size_t capacity_;
    int channels_;
    std::vector<float> data_;
    uint64_t write_position_ = 0;
    std::vector<ReadCursor*> readers_;
    uint64_t total_overruns_ = 0;
    uint64_t total_dropped_frames_ = 0;
    mutable std::mutex mutex_;
};

}  // namespace sinkcast
