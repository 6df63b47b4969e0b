// The WebRTC output of one sink: the mixed PCM is cut into Opus frames,
// encoded ONCE, and the same packet goes to every listener whose track is
// open. Runs on the sink's mixer thread, holding the listener list's lock
// while it sends. Listeners come and go from control threads, which wait for
// a fan-out in progress; the mixer waits at most for one insert or erase. So
// a removed listener always leaves on the caller's thread: its peer
// connection is never torn down on the mixer thread.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "codec/opus_encoder.h"
#include "webrtc/webrtc_sender.h"

namespace sinkcast {

struct StreamerStats {
    uint64_t frames_encoded = 0;
    uint64_t bytes_encoded = 0;
    uint64_t packets_fanned_out = 0;  // frames handed to listeners (one per open listener per frame)
};

class SinkStreamer {
public:
    explicit SinkStreamer(const OpusSettings& settings);

    void add_listener(std::shared_ptr<WebRTCSender> sender);
    // Returns the removed listener (null if it was not there), so its last
    // reference is dropped by the caller, outside the lock.
    std::shared_ptr<WebRTCSender> remove_listener(const WebRTCSender* sender);

    // Mixer thread only. Encodes and sends every completed frame.
    void on_pcm(const float* frames, size_t count);

    StreamerStats stats() const;
    const OpusSettings& settings() const { return settings_; }

private:
    OpusSettings settings_;
    OpusEncoder encoder_;
    std::vector<float> frame_;   // one Opus frame of PCM being filled
    size_t filled_ = 0;          // frames in frame_
    std::vector<uint8_t> packet_;

    std::mutex mutex_;  // guards listeners_; held by on_pcm() for a whole fan-out
    std::vector<std::shared_ptr<WebRTCSender>> listeners_;

    std::atomic<uint64_t> frames_encoded_{0}, bytes_encoded_{0}, packets_fanned_out_{0};
};

}  // namespace sinkcast
