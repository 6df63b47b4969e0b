// The mix of one sink: clip(volume * sum_i gain_i * map_i(source_i), -1, 1),
// at 48 kHz, 1 or 2 channels. The caller drives it (a real-time thread or
// render()); the mixer itself has no thread and no clock.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "audio/aligned_vector.h"
#include "audio/channel_mix.h"
#include "audio/mix_kernels.h"
#include "audio/source.h"

namespace sinkcast {

struct RouteStats {
    std::string source_id;
    double gain = 1.0;
    uint64_t underruns = 0;
    uint64_t overruns = 0;
    uint64_t dropped_frames = 0;
    size_t buffered_frames = 0;
};

struct MixerStats {
    uint64_t frames_mixed = 0;
    uint64_t clipped_samples = 0;
    float peak = 0.0f;  // largest |sample| of the most recent 10 ms period
    std::vector<RouteStats> routes;
};

class SinkAudioMixer {
public:
    // max_block_frames bounds the internal accumulator; mix() splits larger requests.
    SinkAudioMixer(int channels, size_t max_block_frames);
    ~SinkAudioMixer();

    int channels() const { return channels_; }

    // Route management; called from control threads. Each takes the mixer lock
    // only for the swap, never while a source is being resampled.
    bool has_route(const std::string& source_id) const;
    void add_route(const std::string& source_id, std::shared_ptr<Source> source, double gain);
    bool remove_route(const std::string& source_id);
    bool set_gain(const std::string& source_id, double gain);

    void set_volume(double volume) { volume_.store(volume, std::memory_order_relaxed); }
    double volume() const { return volume_.load(std::memory_order_relaxed); }

    // Mixes the next `frames` frames into `out` (interleaved float32). No allocation.
    void mix(float* out, size_t frames);

    MixerStats stats() const;

private:
    struct Route {
        std::string source_id;
        std::shared_ptr<Source> source;
        RouteCursor cursor;  // address must stay stable: the source's ring points at it
        ChannelMatrix matrix;
        std::atomic<double> gain{1.0};
        bool lends = false;  // the source lends its frames in place and the map is identity
        uint64_t underruns = 0;
        uint64_t last_underrun_period = UINT64_MAX;  // see count_underrun()
    };

    // One period being mixed.
    struct BlockMix {
        float* out;
        size_t frames;
        double volume;
        bool acc_in_use = false;  // acc_ holds this period's audio so far
        double peak = 0.0;
        uint64_t clipped = 0;
        // What float sums may still cost each output sample (mix_kernels.h):
        // each group that sums in float spends its rounding bound from it.
        double rounding_budget = kRoundingBudget;
    };

    void mix_block(float* out, size_t frames);
    // All called with mutex_ held.
    size_t mix_route(Route& route, size_t frames, MixTarget& target);
    // The most common sink: one source whose frames the ring lends, read in one
    // scaled copy per run. For it, the grouping in mix_lenders() cost as much as
    // the copy.
    void mix_only_source(BlockMix& block, Route& route);
    void mix_lenders(BlockMix& block, size_t lenders);
    void mix_group(BlockMix& block, Route* const* members, SourceLoan* loans, int count, bool last);
    // Frames [begin, end) of `group` into the output (last) or the accumulator.
    void mix_piece(BlockMix& block, const SourceGroup& group, size_t begin, size_t end, bool last, GroupSum how);
    void count_underrun(Route& route);  // the route's and its source's counters, once per period
    void record_block(size_t frames, double peak, uint64_t clipped);

    int channels_;
    size_t max_block_frames_;
    AlignedVector<double> acc_;
    std::atomic<double> volume_{1.0};
    mutable std::mutex mutex_;  // guards routes_ and the counters below
    std::vector<std::unique_ptr<Route>> routes_;
    // The loans of the group being mixed. A member rather than a local: building
    // eight empty loans every period costs as much as mixing one source. Each
    // is emptied (unlocked) as soon as its group is mixed.
    std::array<SourceLoan, kMaxGroup> loans_;
    uint64_t frames_mixed_ = 0;
    uint64_t clipped_samples_ = 0;
    float peak_ = 0.0f;
};

}  // namespace sinkcast
