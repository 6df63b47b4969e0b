// The WebRTC output of one sink: the mixed PCM is cut into Opus frames,
// encoded ONCE, and the same packet goes to every listener whose track is
// open. Runs on the sink's mixer thread; listeners come and go from control
// threads through a copy-on-write snapshot, so the mixer never waits for them.
// A removal waits for a fan-out in progress to finish instead: the mixer's
// snapshot must not be what keeps a removed listener alive, or its peer
// connection would be torn down on the mixer thread.
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
    void remove_listener(const WebRTCSender* sender);

    // Mixer thread only. Encodes and sends every completed frame.
    void on_pcm(const float* frames, size_t count);

    StreamerStats stats() const;
    const OpusSettings& settings() const { return settings_; }

private:
    using ListenerList = std::vector<std::shared_ptr<WebRTCSender>>;

    OpusSettings settings_;
    OpusEncoder encoder_;
    std::vector<float> frame_;   // one Opus frame of PCM being filled
    size_t filled_ = 0;          // frames in frame_
    std::vector<uint8_t> packet_;

    mutable std::mutex mutex_;  // guards the pointer swap only
    std::shared_ptr<const ListenerList> listeners_;
    // Held by on_pcm() for as long as it holds a snapshot; remove_listener()
    // takes it once, after the swap, to wait that snapshot out.
    std::mutex fanout_mutex_;

    std::atomic<uint64_t> frames_encoded_{0}, bytes_encoded_{0}, packets_fanned_out_{0};
};

}  // namespace sinkcast
