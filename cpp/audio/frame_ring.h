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

#include "audio/aligned_vector.h"

namespace sinkcast {

struct ReadCursor {
    uint64_t position = 0;      // absolute frame index of the next frame to read
    bool primed = false;        // jitter prebuffer reached since the last underrun
    // Written under the ring's lock by the pushing thread, read by stats() from
    // any thread: atomic, so that read needs no lock and is no data race.
    std::atomic<uint64_t> dropped_frames{0};  // frames overwritten before this reader got them
    std::atomic<uint64_t> overruns{0};        // times that happened
};

// Where frames sit in the ring: one contiguous run, or two when they wrap
// around its end. Frame 0 of the request is data[0][0].
struct RingRuns {
    const float* data[2] = {nullptr, nullptr};
    size_t frames[2] = {0, 0};
    int count = 0;
    float peak = 0;  // no sample of the runs is larger in magnitude (a bound, not always reached)
    size_t total() const { return frames[0] + frames[1]; }
};

class FrameRing {
public:
    FrameRing(size_t capacity_frames, int channels);

    size_t capacity_frames() const { return capacity_; }
    int channels() const { return channels_; }

    // Registers a reader that starts at the current write position (new audio only).
    void attach(ReadCursor* cursor);
    void detach(ReadCursor* cursor);

    // Appends frames. `fill(dst, offset, frames)` writes `frames` interleaved
    // frames, from `offset` on in the caller's data, into dst, and returns a
    // bound on the largest |sample| it wrote (that sample's magnitude, or more).
    // It is called once or twice (when the write wraps) with the ring lock held.
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
            note_peak_locked(slot, run, fill(data_.data() + slot * channels_, offset, run));
            start += run;
            offset += run;
            remaining -= run;
        }
        write_position_ += frames;
        drop_overwritten_locked();
    }

    // Calls `visit(src, offset, frames)` for the up to two contiguous runs of the
    // next `frames` frames available to `cursor`, consuming them. Returns how many
    // frames were consumed (< frames when the reader is starved). Readers wait
    // for `prebuffer_frames` after every underrun before they consume again.
    template <typename Visit>
    size_t read(ReadCursor* cursor, size_t frames, size_t prebuffer_frames, Visit&& visit) {
        std::lock_guard<std::mutex> lock(mutex_);
        RingRuns runs = take_locked(cursor, frames, prebuffer_frames);
        size_t offset = 0;
        for (int i = 0; i < runs.count; ++i) {
            visit(runs.data[i], offset, runs.frames[i]);
            offset += runs.frames[i];
        }
        return runs.total();
    }

    // Reading in place across calls, for a mixer that reads several rings in one
    // pass: lock_for_reading() takes the ring's lock (or only tries to, with
    // wait=false; check owns_lock()), and while it is held take_locked() consumes
    // frames as read() would and says where they are. The runs stay valid, and
    // no writer can touch them, until the lock is released.
    std::unique_lock<std::mutex> lock_for_reading(bool wait) {
        return wait ? std::unique_lock<std::mutex>(mutex_) : std::unique_lock<std::mutex>(mutex_, std::try_to_lock);
    }
    RingRuns take_locked(ReadCursor* cursor, size_t frames, size_t prebuffer_frames);

    // The producer has nothing more for now: every reader may play what is
    // queued up to here without waiting for its prebuffer (the end of a clip
    // shorter than the prebuffer would otherwise wait for the next clip).
    void mark_end();

    size_t buffered_frames(const ReadCursor* cursor) const;
    // How near the readers are to running dry: whether any is playing (has
    // reached its prebuffer since its last underrun), and the most frames any
    // has queued.
    struct Level {
        bool playing = false;
        size_t most_buffered = 0;
    };
    Level level() const;
    // Writes that overwrote frames some reader had not read, and those frames
    // (each once, however many readers lost it).
    uint64_t total_overruns() const;
    uint64_t total_dropped_frames() const;

private:
    void drop_overwritten_locked();
    void note_peak_locked(size_t slot, size_t frames, float peak);
    float peak_locked(size_t slot, size_t frames) const;

    size_t capacity_;
    int channels_;
    AlignedVector<float> data_;
    uint64_t write_position_ = 0;
    uint64_t end_position_ = 0;  // frames before this may play below the prebuffer (mark_end)
    std::vector<ReadCursor*> readers_;
    uint64_t total_overruns_ = 0;
    uint64_t total_dropped_frames_ = 0;
    mutable std::mutex mutex_;

    // The largest |sample| per block of ring slots, so a reader learns a bound
    // for the frames it takes: the mixer sums quiet sources in float when that
    // is exact enough (mix_kernels.h). A block holds samples of the lap that is
    // rewriting it and of the lap before; each has its own peak, and a write
    // that reaches the block's first slot starts a new lap.
    static constexpr size_t kPeakBlockFrames = 256;
    struct BlockPeak {
        float this_lap = 0, previous_lap = 0;
    };
    std::vector<BlockPeak> block_peaks_;  // after capacity_, which sizes it
};

}  // namespace sinkcast
