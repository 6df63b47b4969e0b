#include "audio/push_source.h"

#include <algorithm>

namespace sinkcast {

PushSource::PushSource(int sample_rate, int channels, size_t capacity_frames, size_t prebuffer_frames)
    : Source(channels),
      sample_rate_(sample_rate),
      prebuffer_frames_(std::min(prebuffer_frames, capacity_frames)),
      ring_(capacity_frames, channels) {
    if (sample_rate != kEngineRate) resampler_ = std::make_unique<Resampler>(sample_rate, kEngineRate, channels);
}

void PushSource::push(const void* data, SampleFormat format, size_t frames) {
    const size_t ch = static_cast<size_t>(channels());
    const size_t frame_bytes = sample_format_bytes(format) * ch;
    const char* bytes = static_cast<const char*>(data);
    frames_in_.fetch_add(frames, std::memory_order_relaxed);
    if (!resampler_) {
        // The one copy: straight from the caller's buffer into the ring, converting.
        ring_.write(frames, [&](float* dst, size_t offset, size_t n) {
            return convert_to_float(bytes + offset * frame_bytes, format, n * ch, dst);
        });
        return;
    }
    std::lock_guard<std::mutex> lock(push_mutex_);
    // Resample outside the ring lock so the mixer never waits for libsoxr.
    scratch_.resize(frames * ch);
    const float peak = convert_to_float(data, format, frames * ch, scratch_.data());
    if (peak > kResamplerInputLimit) {
        // libsoxr's float arithmetic turns samples near float's limit (3e38:
        // garbage, an uninitialised buffer) into Inf and NaN for a whole block.
        // Far beyond anything audible, they are clamped where that cannot
        // happen; the mix clips them to full scale all the same.
        for (float& x : scratch_) x = std::clamp(x, -kResamplerInputLimit, kResamplerInputLimit);
    }
    resampler_->process(scratch_.data(), frames, [this](const float* out, size_t n) { write_resampled(out, n); });
}

void PushSource::flush() {
    if (resampler_) {
        std::lock_guard<std::mutex> lock(push_mutex_);
        resampler_->drain([this](const float* out, size_t n) { write_resampled(out, n); });
    }
    ring_.mark_end();
}

void PushSource::write_resampled(const float* frames, size_t count) {
    const size_t ch = static_cast<size_t>(channels());
    ring_.write(count, [&](float* dst, size_t offset, size_t run) {
        return copy_samples(frames + offset * ch, run * ch, dst);
    });
}

size_t PushSource::mix_into(RouteCursor& cursor, size_t frames, const ChannelMatrix& matrix, double gain,
                            MixTarget& target) {
    // Accumulates straight from the ring: no intermediate copy on the mixer path.
    return ring_.read(&cursor.ring, frames, prebuffer_frames_, [&](const float* src, size_t offset, size_t n) {
        target.add(src, offset, n, matrix, gain);
    });
}

bool PushSource::lend(RouteCursor& cursor, size_t frames, bool wait, SourceLoan& loan) {
    loan.lock = ring_.lock_for_reading(wait);
    if (!loan.lock.owns_lock()) return false;
    loan.runs = ring_.take_locked(&cursor.ring, frames, prebuffer_frames_);
    return true;
}

SourceCounters PushSource::counters() const {
    SourceCounters c = Source::counters();
    c.frames_in = frames_in_.load(std::memory_order_relaxed);
    c.overruns = ring_.total_overruns();
    c.dropped_frames = ring_.total_dropped_frames();
    return c;
}

}  // namespace sinkcast
