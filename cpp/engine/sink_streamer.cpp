#include "engine/sink_streamer.h"

#include <algorithm>
#include <cstring>

namespace sinkcast {

SinkStreamer::SinkStreamer(const OpusSettings& settings)
    : settings_(settings),
      encoder_(settings),
      frame_(static_cast<size_t>(encoder_.frame_samples() * settings.channels)),
      packet_(OpusEncoder::kMaxPacketBytes) {}

void SinkStreamer::add_listener(std::shared_ptr<WebRTCSender> sender) {
    std::lock_guard<std::mutex> lock(mutex_);
    listeners_.push_back(std::move(sender));
}

std::shared_ptr<WebRTCSender> SinkStreamer::remove_listener(const WebRTCSender* sender) {
    std::lock_guard<std::mutex> lock(mutex_);  // waits for a fan-out in progress
    auto it = std::find_if(listeners_.begin(), listeners_.end(), [&](const auto& s) { return s.get() == sender; });
    if (it == listeners_.end()) return nullptr;
    std::shared_ptr<WebRTCSender> removed = std::move(*it);
    listeners_.erase(it);
    return removed;
}

void SinkStreamer::on_pcm(const float* frames, size_t count) {
    std::lock_guard<std::mutex> lock(mutex_);
    // Stops at the first open track: the send loop below checks each one anyway.
    if (std::none_of(listeners_.begin(), listeners_.end(), [](const auto& l) { return l->track_open(); })) {
        filled_ = 0;  // nobody to send to: skip the encoder entirely
        return;
    }
    const size_t ch = static_cast<size_t>(settings_.channels);
    const size_t frame_frames = static_cast<size_t>(encoder_.frame_samples());
    const auto duration = std::chrono::microseconds(settings_.frame_ms * 1000);
    while (count > 0) {
        size_t take = std::min(count, frame_frames - filled_);
        std::memcpy(frame_.data() + filled_ * ch, frames, take * ch * sizeof(float));
        filled_ += take;
        frames += take * ch;
        count -= take;
        if (filled_ < frame_frames) break;
        filled_ = 0;
        size_t bytes = encoder_.encode(frame_.data(), packet_.data(), packet_.size());
        frames_encoded_.fetch_add(1, std::memory_order_relaxed);
        bytes_encoded_.fetch_add(bytes, std::memory_order_relaxed);
        // The same packet for everyone: per listener it is only packetizing, SRTP and the send.
        uint64_t sent = 0;
        for (const auto& l : listeners_)
            if (l->send_frame(packet_.data(), bytes, duration)) ++sent;  // no-op for a track not open yet
        packets_fanned_out_.fetch_add(sent, std::memory_order_relaxed);  // one atomic per frame, not per listener
    }
}

StreamerStats SinkStreamer::stats() const {
    StreamerStats s;
    s.frames_encoded = frames_encoded_.load(std::memory_order_relaxed);
    s.bytes_encoded = bytes_encoded_.load(std::memory_order_relaxed);
    s.packets_fanned_out = packets_fanned_out_.load(std::memory_order_relaxed);
    return s;
}

}  // namespace sinkcast
