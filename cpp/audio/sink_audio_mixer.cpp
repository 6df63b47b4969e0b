#include "audio/sink_audio_mixer.h"

#include <algorithm>

namespace sinkcast {

SinkAudioMixer::SinkAudioMixer(int channels, size_t max_block_frames)
    : channels_(channels),
      max_block_frames_(max_block_frames),
      acc_(max_block_frames * static_cast<size_t>(channels), 0.0) {}

SinkAudioMixer::~SinkAudioMixer() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& route : routes_) route->source->detach(route->cursor);
}

bool SinkAudioMixer::has_route(const std::string& source_id) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& route : routes_)
        if (route->source_id == source_id) return true;
    return false;
}

void SinkAudioMixer::add_route(const std::string& source_id, std::shared_ptr<Source> source, double gain) {
    auto route = std::make_unique<Route>();
    route->source_id = source_id;
    route->matrix = standard_channel_matrix(source->channels(), channels_);
    route->gain.store(gain);
    route->source = std::move(source);
    route->source->attach(route->cursor);
    std::lock_guard<std::mutex> lock(mutex_);
    routes_.push_back(std::move(route));
}

bool SinkAudioMixer::remove_route(const std::string& source_id) {
    std::unique_ptr<Route> removed;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = std::find_if(routes_.begin(), routes_.end(),
                               [&](const auto& r) { return r->source_id == source_id; });
        if (it == routes_.end()) return false;
        removed = std::move(*it);
        routes_.erase(it);
    }
    removed->source->detach(removed->cursor);
    return true;
}

bool SinkAudioMixer::set_gain(const std::string& source_id, double gain) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& route : routes_) {
        if (route->source_id == source_id) {
            route->gain.store(gain, std::memory_order_relaxed);
            return true;
        }
    }
    return false;
}

void SinkAudioMixer::mix(float* out, size_t frames) {
    const size_t ch = static_cast<size_t>(channels_);
    for (size_t done = 0; done < frames;) {
        size_t n = std::min(max_block_frames_, frames - done);
        mix_block(out + done * ch, n);
        done += n;
    }
}

void SinkAudioMixer::mix_block(float* out, size_t frames) {
    const size_t ch = static_cast<size_t>(channels_);
    const size_t samples = frames * ch;
    const double volume = volume_.load(std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mutex_);

    // One route with an identity map (the most common sink): straight to the
    // output, no accumulator.
    if (routes_.size() == 1 && routes_.front()->matrix.identity) {
        Route& route = *routes_.front();
        MixTarget target = MixTarget::direct(out, channels_, volume);
        size_t got = mix_route(route, frames, target);
        std::fill(out + got * ch, out + samples, 0.0f);
        record_block(frames, target.direct_peak(), target.direct_clipped());
        return;
    }

    double* acc = acc_.data();
    MixTarget target = MixTarget::accumulator(acc, channels_);
    size_t written = 0;  // frames of acc holding this period's audio; the rest is stale
    for (auto& route : routes_) {
        // The first route that has audio stores instead of adding: no zero-fill pass.
        target.set_overwrite(written == 0);
        size_t got = mix_route(*route, frames, target);
        if (written == 0 && got > 0) {
            std::fill(acc + got * ch, acc + samples, 0.0);
            written = frames;
        }
    }
    if (written == 0) std::fill(acc, acc + samples, 0.0);

    uint64_t clipped = 0;
    const double peak = finish_mix(acc, samples, volume, out, &clipped);
    record_block(frames, peak, clipped);
}

size_t SinkAudioMixer::mix_route(Route& route, size_t frames, MixTarget& target) {
    const double gain = route.gain.load(std::memory_order_relaxed);
    size_t got = route.source->mix_into(route.cursor, frames, route.matrix, gain, target);
    if (got < frames) {
        route.underruns += 1;
        route.source->count_underrun();
    }
    return got;
}

void SinkAudioMixer::record_block(size_t frames, double peak, uint64_t clipped) {
    frames_mixed_ += frames;
    clipped_samples_ += clipped;
    peak_ = static_cast<float>(std::min(peak, 1.0));
}

MixerStats SinkAudioMixer::stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    MixerStats s;
    s.frames_mixed = frames_mixed_;
    s.clipped_samples = clipped_samples_;
    s.peak = peak_;
    for (const auto& route : routes_) {
        RouteStats r;
        r.source_id = route->source_id;
        r.gain = route->gain.load(std::memory_order_relaxed);
        r.underruns = route->underruns;
        r.overruns = route->cursor.ring.overruns.load(std::memory_order_relaxed);
        r.dropped_frames = route->cursor.ring.dropped_frames.load(std::memory_order_relaxed);
        r.buffered_frames = route->source->buffered_frames(route->cursor);
        s.routes.push_back(std::move(r));
    }
    return s;
}

}  // namespace sinkcast
