// A source fed by push(): PCM from Python (or any caller) at 8-192 kHz with
// 1-8 channels, converted to float, resampled to 48 kHz and kept in a ring.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "audio/frame_ring.h"
#include "audio/resampler.h"
#include "audio/sample_format.h"
#include "audio/source.h"

namespace sinkcast {

// Larger samples are clamped before resampling (see push()). 48 kHz sources
// take any finite float as it is.
constexpr float kResamplerInputLimit = 1e30f;

class PushSource final : public Source {
public:
    // capacity_frames and prebuffer_frames count 48 kHz frames.
    PushSource(int sample_rate, int channels, size_t capacity_frames, size_t prebuffer_frames);

    const char* kind() const override { return "push"; }
    int sample_rate() const override { return sample_rate_; }

    // Never blocks on the mixer for longer than a copy; safe from any thread.
    // The caller has validated format, channel count and finiteness.
    void push(const void* data, SampleFormat format, size_t frames);

    // Nothing more for now (the end of a clip or of a stream): what the
    // resampler still holds goes into the ring, and every route plays all that
    // is queued even below jitter_ms. Later pushes start afresh.
    void flush();

    void attach(RouteCursor& cursor) override { ring_.attach(&cursor.ring); }
    void detach(RouteCursor& cursor) override { ring_.detach(&cursor.ring); }
    size_t mix_into(RouteCursor& cursor, size_t frames, const ChannelMatrix& matrix, double gain,
                    MixTarget& target) override;
    bool lends_frames() const override { return true; }
    bool lend(RouteCursor& cursor, size_t frames, bool wait, SourceLoan& loan) override;
    size_t buffered_frames(const RouteCursor& cursor) const override { return ring_.buffered_frames(&cursor.ring); }
    FrameRing::Level level() const { return ring_.level(); }
    SourceCounters counters() const override;

private:
    // Queues the resampler's 48 kHz output (push_mutex_ held).
    void write_resampled(const float* frames, size_t count);

    int sample_rate_;
    size_t prebuffer_frames_;
    FrameRing ring_;
    std::mutex push_mutex_;  // one pusher at a time through the resampler and scratch
    std::unique_ptr<Resampler> resampler_;  // null at 48 kHz
    std::vector<float> scratch_;
    std::atomic<uint64_t> frames_in_{0};
};

}  // namespace sinkcast
