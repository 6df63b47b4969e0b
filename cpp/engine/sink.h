// One named sink: its mixer, its clock (a real-time thread on absolute
// deadlines, or none in manual mode) and the consumers of each mixed period
// (PCM taps now; the Opus encoder and the WebRTC listeners hang off here too).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "audio/aligned_vector.h"
#include "audio/pcm_tap.h"
#include "audio/sink_audio_mixer.h"
#include "engine/caught_errors.h"
#include "engine/sink_streamer.h"

namespace sinkcast {

struct SinkConfig {
    int channels = 2;
    int frame_ms = 20;          // Opus frame: 10 or 20
    double volume = 1.0;
    std::optional<int> bitrate_bps;  // unset: 128 kbit/s stereo, 64 kbit/s mono
    int complexity = 9;         // 0-10
    bool low_delay = false;     // Opus RESTRICTED_LOWDELAY instead of AUDIO
};

OpusSettings opus_settings_for(const SinkConfig& config);

struct SinkClockStats {
    uint64_t periods = 0;       // whole 10 ms periods mixed by the clock (real time) or render()
    // Real time: periods of ticks that ran more than one tick (10 or 20 ms, the
    // Opus frame) after the tick's deadline, the end of its last period.
    uint64_t late_periods = 0;
    uint64_t resyncs = 0;       // real time: times the clock fell so far behind it skipped ahead
    uint64_t errors = 0;        // real time: periods the clock thread failed to mix or send (CaughtErrors)
    std::string last_error;
};

class Sink {
public:
    static constexpr int kPeriodMs = 10;
    static constexpr size_t kPeriodFrames = 480;  // 10 ms at 48 kHz

    Sink(std::string id, const SinkConfig& config, bool realtime);
    ~Sink();

    const std::string& id() const { return id_; }
    const SinkConfig& config() const { return config_; }
    SinkAudioMixer& mixer() { return mixer_; }
    SinkStreamer& streamer() { return streamer_; }
    const SinkStreamer& streamer() const { return streamer_; }
    const SinkAudioMixer& mixer() const { return mixer_; }

    // Manual clock: mixes the next `frames` frames into out and feeds the taps.
    void render(float* out, size_t frames);

    std::shared_ptr<PcmTap> open_tap(size_t capacity_frames);

    // Stops the real-time thread (joins it) and closes the taps. Idempotent.
    void stop();

    SinkClockStats clock_stats() const;
    size_t tap_count() const;

private:
    void run_clock();
    // The real-time clock ticks once per Opus frame: 1 or 2 periods.
    size_t periods_per_tick() const { return static_cast<size_t>(config_.frame_ms / kPeriodMs); }
    void deliver(const float* frames, size_t count);
    void forget_closed_taps_locked();  // taps_mutex_ held

    std::string id_;
    SinkConfig config_;
    SinkAudioMixer mixer_;
    SinkStreamer streamer_;
    AlignedVector<float> period_;  // the real-time thread's output buffer: one Opus frame of periods

    mutable std::mutex taps_mutex_;
    // Weak: a tap its owner dropped without close() stops costing a copy and its ring.
    std::vector<std::weak_ptr<PcmTap>> taps_;

    std::atomic<uint64_t> periods_{0}, late_periods_{0}, resyncs_{0};
    CaughtErrors clock_errors_;

    std::mutex clock_mutex_;
    // Manual clock: render() calls from several threads take turns. The mix is
    // locked per block, but the encoder's frame assembly after it is not.
    std::mutex render_mutex_;
    uint64_t rendered_frames_ = 0;  // guarded by render_mutex_; render() may take any number of frames
    std::condition_variable clock_wake_;
    bool stopping_ = false;
    std::thread clock_thread_;
};

}  // namespace sinkcast
