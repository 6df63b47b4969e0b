#include "audio/frame_ring.h"

#include <algorithm>

namespace sinkcast {

FrameRing::FrameRing(size_t capacity_frames, int channels)
    : capacity_(std::max<size_t>(capacity_frames, 1)),
      channels_(channels),
      data_(capacity_ * static_cast<size_t>(channels), 0.0f),
      block_peaks_((capacity_ + kPeakBlockFrames - 1) / kPeakBlockFrames) {}

void FrameRing::attach(ReadCursor* cursor) {
    std::lock_guard<std::mutex> lock(mutex_);
    cursor->position = write_position_;
    cursor->primed = false;
    readers_.push_back(cursor);
}

void FrameRing::detach(ReadCursor* cursor) {
    std::lock_guard<std::mutex> lock(mutex_);
    readers_.erase(std::remove(readers_.begin(), readers_.end(), cursor), readers_.end());
}

RingRuns FrameRing::take_locked(ReadCursor* cursor, size_t frames, size_t prebuffer_frames) {
    RingRuns runs;
    const uint64_t available = write_position_ - cursor->position;
    if (!cursor->primed) {
        const bool before_end = cursor->position < end_position_;
        if (available == 0 || (available < prebuffer_frames && !before_end)) return runs;
        cursor->primed = true;
    }
    // An attached cursor never lags by more than the capacity (writes move it on),
    // so at most two runs; the bound keeps that true for any cursor.
    const size_t take = static_cast<size_t>(std::min<uint64_t>(std::min<uint64_t>(available, frames), capacity_));
    if (take < frames) cursor->primed = false;  // starved: prebuffer again
    if (take == 0) return runs;
    const size_t slot = static_cast<size_t>(cursor->position % capacity_);
    const size_t first = std::min(take, capacity_ - slot);
    runs.data[0] = data_.data() + slot * static_cast<size_t>(channels_);
    runs.frames[0] = first;
    runs.peak = peak_locked(slot, first);
    runs.count = 1;
    if (first < take) {  // wraps around the end of the ring
        runs.data[1] = data_.data();
        runs.frames[1] = take - first;
        runs.peak = std::max(runs.peak, peak_locked(0, take - first));
        runs.count = 2;
    }
    cursor->position += take;
    return runs;
}

void FrameRing::mark_end() {
    std::lock_guard<std::mutex> lock(mutex_);
    end_position_ = write_position_;
}

size_t FrameRing::buffered_frames(const ReadCursor* cursor) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<size_t>(write_position_ - cursor->position);
}

FrameRing::Level FrameRing::level() const {
    std::lock_guard<std::mutex> lock(mutex_);
    Level level;
    for (const ReadCursor* r : readers_) {
        level.playing = level.playing || r->primed;
        level.most_buffered = std::max(level.most_buffered, static_cast<size_t>(write_position_ - r->position));
    }
    return level;
}

uint64_t FrameRing::total_overruns() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return total_overruns_;
}

uint64_t FrameRing::total_dropped_frames() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return total_dropped_frames_;
}

void FrameRing::note_peak_locked(size_t slot, size_t frames, float peak) {
    for (size_t b = slot / kPeakBlockFrames; b <= (slot + frames - 1) / kPeakBlockFrames; ++b) {
        BlockPeak& block = block_peaks_[b];
        if (slot <= b * kPeakBlockFrames) {  // this write reaches the block's first slot: a new lap
            block.previous_lap = block.this_lap;
            block.this_lap = peak;
        } else {
            block.this_lap = std::max(block.this_lap, peak);
        }
    }
}

float FrameRing::peak_locked(size_t slot, size_t frames) const {
    float peak = 0;
    for (size_t b = slot / kPeakBlockFrames; b <= (slot + frames - 1) / kPeakBlockFrames; ++b)
        peak = std::max({peak, block_peaks_[b].this_lap, block_peaks_[b].previous_lap});
    return peak;
}

void FrameRing::drop_overwritten_locked() {
    const uint64_t oldest_kept = write_position_ > capacity_ ? write_position_ - capacity_ : 0;
    uint64_t first_lost = oldest_kept;  // the earliest frame some reader had not read yet
    for (ReadCursor* reader : readers_) {
        if (reader->position < oldest_kept) {
            reader->dropped_frames += oldest_kept - reader->position;
            reader->overruns += 1;
            first_lost = std::min(first_lost, reader->position);
            reader->position = oldest_kept;
        }
    }
    // The ring's own count is of frames, not of readers: a frame two routes
    // lost is one frame of the source lost. Every reader now stands at or past
    // oldest_kept, so a later write never counts these frames again.
    if (first_lost < oldest_kept) {
        total_dropped_frames_ += oldest_kept - first_lost;
        total_overruns_ += 1;
    }
}

}  // namespace sinkcast
