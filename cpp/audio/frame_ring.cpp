#include "audio/frame_ring.h"

#include <algorithm>

namespace sinkcast {

FrameRing::FrameRing(size_t capacity_frames, int channels)
    : capacity_(std::max<size_t>(capacity_frames, 1)),
      channels_(channels),
      data_(capacity_ * static_cast<size_t>(channels), 0.0f) {}

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

size_t FrameRing::buffered_frames(const ReadCursor* cursor) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<size_t>(write_position_ - cursor->position);
}

uint64_t FrameRing::total_overruns() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return total_overruns_;
}

uint64_t FrameRing::total_dropped_frames() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return total_dropped_frames_;
}

void FrameRing::drop_overwritten_locked() {
    uint64_t oldest_kept = write_position_ > capacity_ ? write_position_ - capacity_ : 0;
    for (ReadCursor* reader : readers_) {
        if (reader->position < oldest_kept) {
            reader->dropped_frames += oldest_kept - reader->position;
            reader->overruns += 1;
            total_dropped_frames_ += oldest_kept - reader->position;
            total_overruns_ += 1;
            reader->position = oldest_kept;
        }
    }
}

}  // namespace sinkcast
