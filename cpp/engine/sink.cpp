#include "engine/sink.h"

#include <algorithm>

#include "engine/thread_name.h"

namespace sinkcast {

OpusSettings opus_settings_for(const SinkConfig& config) {
    OpusSettings o;
    o.channels = config.channels;
    o.bitrate_bps = config.bitrate_bps.value_or(config.channels == 2 ? 128000 : 64000);
    o.complexity = config.complexity;
    o.frame_ms = config.frame_ms;
    o.low_delay = config.low_delay;
    return o;
}

Sink::Sink(std::string id, const SinkConfig& config, bool realtime)
    : id_(std::move(id)),
      config_(config),
      mixer_(config.channels, kPeriodFrames),
      streamer_(opus_settings_for(config)),
      period_(periods_per_tick() * kPeriodFrames * static_cast<size_t>(config.channels)) {
    mixer_.set_volume(config.volume);
    if (realtime) {
        clock_thread_ = std::thread([this] { run_clock(); });
        name_thread(clock_thread_, "sinkcast clock");
    }
}

Sink::~Sink() { stop(); }

void Sink::stop() {
    {
        std::lock_guard<std::mutex> lock(clock_mutex_);
        stopping_ = true;
    }
    clock_wake_.notify_all();
    if (clock_thread_.joinable() && clock_thread_.get_id() != std::this_thread::get_id()) clock_thread_.join();
    // No more audio will come: tell the taps' readers (what they hold stays readable).
    std::lock_guard<std::mutex> lock(taps_mutex_);
    for (auto& weak : taps_)
        if (auto tap = weak.lock()) tap->close();
    taps_.clear();
}

void Sink::run_clock() {
    using clock = std::chrono::steady_clock;
    // One wake-up per Opus frame (10 or 20 ms), mixing the 10 ms periods it
    // covers. Waking every period would cost a second wake-up per 20 ms frame
    // and gain the listeners nothing: the encoder needs the whole frame anyway,
    // and a period mixed later only finds more of its audio queued. Taps get
    // the frame's periods together, the first one 10 ms later than before.
    const size_t periods = periods_per_tick();
    const size_t tick_frames = periods * kPeriodFrames;
    const auto tick = std::chrono::milliseconds(kPeriodMs) * periods;
    // Falling further behind than this (a suspended VM, a debugger) resets the
    // clock instead of mixing a burst of catch-up periods.
    const auto give_up = std::chrono::milliseconds(200);
    auto deadline = clock::now();
    std::unique_lock<std::mutex> lock(clock_mutex_);
    while (!stopping_) {
        deadline += tick;  // absolute deadlines: sleep jitter never accumulates into drift
        if (clock_wake_.wait_until(lock, deadline, [this] { return stopping_; })) break;
        lock.unlock();
        try {
            mixer_.mix(period_.data(), tick_frames);
            periods_.fetch_add(periods, std::memory_order_relaxed);
            deliver(period_.data(), tick_frames);
        } catch (...) {
            clock_errors_.record_current();  // counted and shown in stats(); the next tick goes on
        }
        const auto now = clock::now();
        if (now - deadline > tick) late_periods_.fetch_add(periods, std::memory_order_relaxed);
        if (now - deadline > give_up) {
            resyncs_.fetch_add(1, std::memory_order_relaxed);
            deadline = now;
        }
        lock.lock();
    }
}

void Sink::render(float* out, size_t frames) {
    std::lock_guard<std::mutex> lock(render_mutex_);
    mixer_.mix(out, frames);
    rendered_frames_ += frames;
    periods_.store(rendered_frames_ / kPeriodFrames, std::memory_order_relaxed);
    deliver(out, frames);
}

void Sink::forget_closed_taps_locked() {
    // erase() only moves pointers, it never allocates.
    taps_.erase(std::remove_if(taps_.begin(), taps_.end(),
                               [](const auto& weak) {
                                   auto tap = weak.lock();
                                   return !tap || tap->closed();
                               }),
                taps_.end());
}

void Sink::deliver(const float* frames, size_t count) {
    {
        std::lock_guard<std::mutex> lock(taps_mutex_);
        forget_closed_taps_locked();
        for (auto& weak : taps_)
            if (auto tap = weak.lock()) tap->write(frames, count);
    }
    streamer_.on_pcm(frames, count);
}

std::shared_ptr<PcmTap> Sink::open_tap(size_t capacity_frames) {
    auto tap = std::make_shared<PcmTap>(config_.channels, capacity_frames);
    std::lock_guard<std::mutex> lock(taps_mutex_);
    // Also here: on a manual clock nothing else may run deliver() between opens.
    forget_closed_taps_locked();
    taps_.push_back(tap);
    return tap;
}

size_t Sink::tap_count() const {
    std::lock_guard<std::mutex> lock(taps_mutex_);
    size_t n = 0;
    for (const auto& weak : taps_) {
        auto tap = weak.lock();
        n += tap && !tap->closed() ? 1 : 0;
    }
    return n;
}

SinkClockStats Sink::clock_stats() const {
    SinkClockStats s;
    s.periods = periods_.load(std::memory_order_relaxed);
    s.late_periods = late_periods_.load(std::memory_order_relaxed);
    s.resyncs = resyncs_.load(std::memory_order_relaxed);
    s.errors = clock_errors_.count();
    s.last_error = clock_errors_.last();
    return s;
}

}  // namespace sinkcast
