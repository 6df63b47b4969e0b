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
    route->lends = route->matrix.identity && source->lends_frames();
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
    const size_t samples = frames * static_cast<size_t>(channels_);
    std::lock_guard<std::mutex> lock(mutex_);
    BlockMix block{out, frames, volume_.load(std::memory_order_relaxed)};
    if (routes_.size() == 1 && routes_.front()->lends) {
        mix_only_source(block, *routes_.front());
        record_block(frames, block.peak, block.clipped);
        return;
    }

    // Routes that cannot lend their frames (generators, channel maps) go into the
    // accumulator one at a time.
    MixTarget target(acc_.data(), channels_);
    size_t lenders = 0;
    for (auto& route : routes_) {
        if (route->lends) {
            lenders += 1;
            continue;
        }
        // The first route that has audio stores instead of adding: no zero-fill pass.
        target.set_overwrite(!block.acc_in_use);
        size_t got = mix_route(*route, frames, target);
        if (!block.acc_in_use && got > 0) {
            std::fill(acc_.data() + got * static_cast<size_t>(channels_), acc_.data() + samples, 0.0);
            block.acc_in_use = true;
        }
    }

    // The others are read in place, kMaxGroup per pass; the last pass writes the output.
    if (lenders > 0) {
        mix_lenders(block, lenders);
    } else {
        SourceGroup none;
        block.peak = finish_group(none, samples, block.acc_in_use ? acc_.data() : nullptr, block.volume, out,
                                  &block.clipped, GroupSum::in_double);
    }
    record_block(frames, block.peak, block.clipped);
}

void SinkAudioMixer::mix_only_source(BlockMix& block, Route& route) {
    const size_t ch = static_cast<size_t>(channels_);
    SourceLoan& loan = loans_[0];
    route.source->lend(route.cursor, block.frames, true, loan);  // may wait: no other ring lock is held
    const RingRuns& runs = loan.runs;
    SourceGroup one;
    one.count = 1;
    one.gain[0] = route.gain.load(std::memory_order_relaxed);
    size_t done = 0;
    for (int r = 0; r < runs.count; ++r) {  // two runs where the ring wraps
        one.in[0] = runs.data[r];
        block.peak = std::max(block.peak, finish_group(one, runs.frames[r] * ch, nullptr, block.volume,
                                                       block.out + done * ch, &block.clipped, GroupSum::in_double));
        done += runs.frames[r];
    }
    loan = SourceLoan{};  // unlocks
    if (done < block.frames) {  // an underrun: the rest of the period is silence
        count_underrun(route);
        std::fill(block.out + done * ch, block.out + block.frames * ch, 0.0f);
    }
}

void SinkAudioMixer::mix_lenders(BlockMix& block, size_t lenders) {
    std::array<SourceLoan, kMaxGroup>& loans = loans_;
    std::array<Route*, kMaxGroup> members;
    int held = 0;
    for (auto& route : routes_) {
        if (!route->lends) continue;
        lenders -= 1;
        // Only the first loan of a group may wait for its lock. When a later one
        // is busy (a push is writing that ring), the group mixes what it holds
        // and lets go before waiting: the mixer never waits while it holds a lock.
        if (!route->source->lend(route->cursor, block.frames, held == 0, loans[static_cast<size_t>(held)])) {
            if (held > 0) mix_group(block, members.data(), loans.data(), held, false);
            held = 0;
            loans[0] = SourceLoan{};
            // Waiting now holds nothing. A source that still lends nothing leaves
            // the loan empty: silence, counted as an underrun.
            route->source->lend(route->cursor, block.frames, true, loans[0]);
        }
        members[static_cast<size_t>(held)] = route.get();
        held += 1;
        if (held == kMaxGroup || lenders == 0) {
            mix_group(block, members.data(), loans.data(), held, lenders == 0);
            held = 0;
        }
    }
}

void SinkAudioMixer::mix_group(BlockMix& block, Route* const* members, SourceLoan* loans, int count, bool last) {
    const size_t ch = static_cast<size_t>(channels_);
    // The group's sources, gains and peaks. In the usual period every loan is
    // one run of all the frames, and this is the whole mix.
    SourceGroup whole;
    whole.count = count;
    bool split = false;
    for (int i = 0; i < count; ++i) {
        Route& route = *members[i];
        const RingRuns& runs = loans[i].runs;
        whole.in[i] = runs.data[0];
        whole.gain[i] = route.gain.load(std::memory_order_relaxed);
        whole.peak[i] = runs.peak;
        if (runs.total() < block.frames) count_underrun(route);
        split = split || runs.frames[0] < block.frames;
    }

    // One way of summing for every piece: a piece holds a subset of the group's
    // sources, so the group's bound covers it. The budget is spent in the order
    // of the groups; once it is gone, the remaining groups sum in double.
    const SumChoice sum = cheapest_sum_within(whole, block.volume, block.rounding_budget, last && !block.acc_in_use);
    block.rounding_budget -= sum.bound;

    if (!split) {
        mix_piece(block, whole, 0, block.frames, last, sum.how);
    } else {
        // A loan holds two runs when its ring wraps, and ends early on an
        // underrun: cut the period where any of them changes, so every piece
        // reads each source from one contiguous run.
        size_t cuts[2 * kMaxGroup + 2];
        size_t ncuts = 0;
        cuts[ncuts++] = 0;
        cuts[ncuts++] = block.frames;
        for (int i = 0; i < count; ++i) {
            cuts[ncuts++] = loans[i].runs.frames[0];
            cuts[ncuts++] = loans[i].runs.total();
        }
        std::sort(cuts, cuts + ncuts);
        for (size_t c = 0; c + 1 < ncuts; ++c) {
            const size_t begin = cuts[c], end = cuts[c + 1];
            if (begin == end) continue;
            SourceGroup piece;
            for (int i = 0; i < count; ++i) {
                const RingRuns& runs = loans[i].runs;
                if (begin >= runs.total()) continue;  // this source ran dry before this piece
                piece.in[piece.count] =
                    begin < runs.frames[0] ? runs.data[0] + begin * ch : runs.data[1] + (begin - runs.frames[0]) * ch;
                piece.gain[piece.count] = whole.gain[i];
                piece.count += 1;
            }
            mix_piece(block, piece, begin, end, last, sum.how);
        }
    }
    if (!last) block.acc_in_use = true;
    for (int i = 0; i < count; ++i) loans[i] = SourceLoan{};  // unlocks: the rings may be written again
}

void SinkAudioMixer::mix_piece(BlockMix& block, const SourceGroup& group, size_t begin, size_t end, bool last,
                               GroupSum how) {
    const size_t ch = static_cast<size_t>(channels_);
    const size_t samples = (end - begin) * ch;
    double* acc = acc_.data() + begin * ch;
    if (last) {
        const double* mixed = block.acc_in_use ? acc : nullptr;
        block.peak = std::max(block.peak, finish_group(group, samples, mixed, block.volume, block.out + begin * ch,
                                                       &block.clipped, how));
    } else if (group.count > 0) {
        accumulate_group(group, samples, !block.acc_in_use, acc, how);
    } else if (!block.acc_in_use) {
        std::fill(acc, acc + samples, 0.0);
    }
}

size_t SinkAudioMixer::mix_route(Route& route, size_t frames, MixTarget& target) {
    const double gain = route.gain.load(std::memory_order_relaxed);
    size_t got = route.source->mix_into(route.cursor, frames, route.matrix, gain, target);
    if (got < frames) count_underrun(route);
    return got;
}

void SinkAudioMixer::count_underrun(Route& route) {
    // Once per period of the sink's output (max_block_frames_, 10 ms), the one
    // this block starts in: on a manual clock, rendering the same silence in
    // smaller blocks must not count more underruns.
    const uint64_t period = frames_mixed_ / max_block_frames_;
    if (period == route.last_underrun_period) return;
    route.last_underrun_period = period;
    route.underruns += 1;
    route.source->count_underrun();
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
