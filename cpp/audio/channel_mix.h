// Mapping of a source's 1-8 channels onto a sink's 1-2 channels, and the
// inner loop of the mixer that adds one source into a sink's accumulator.
#pragma once

#include <cstddef>
#include <cstdint>

#include "audio/hot_loop.h"

namespace sinkcast {

constexpr int kMaxSourceChannels = 8;
constexpr int kMaxSinkChannels = 2;

// coefficient[out][in]: how much of source channel `in` goes to sink channel `out`.
struct ChannelMatrix {
    int source_channels = 1;
    int sink_channels = 1;
    bool identity = false;  // every channel passes through unchanged (decided once, not per period)
    double coefficient[kMaxSinkChannels][kMaxSourceChannels] = {};
};

// The standard downmix for the default (WAVE/SMPTE) channel orders:
//   1 M | 2 L R | 3 L R C | 4 L R Ls Rs | 5 L R C Ls Rs | 6 L R C LFE Ls Rs
//   7 L R C LFE Cs Ls Rs | 8 L R C LFE Lb Rb Ls Rs
// To stereo (ITU-R BS.775): L' = L + 0.7071*C + 0.7071*(each left surround),
// R' likewise, a back centre at 0.7071 to both sides, LFE dropped. Mono goes
// to both sides at unity. To mono: the average of the stereo downmix, so a
// stereo source becomes (L + R) / 2. No normalisation: the sink clips.
ChannelMatrix standard_channel_matrix(int source_channels, int sink_channels);

// Where a route's audio lands while one period is mixed: the sink's double
// accumulator. Sources hand every run of frames they have to add():
//
//   first route   acc  = gain * matrix * in   (so no zero-fill pass)
//   later routes  acc += gain * matrix * in
//
// The accumulator is double so the mix of many sources stays exact to float
// precision (DESIGN.md's clip(volume * sum) has no rounding of its own).
// Sources that lend their frames in place skip this and are read several at a
// time (mix_kernels.h); this path is for generators and channel maps.
class MixTarget {
public:
    MixTarget(double* acc, int sink_channels) : acc_(acc), sink_channels_(static_cast<size_t>(sink_channels)) {}

    // The next add() stores instead of adding (the first route of a period).
    void set_overwrite(bool overwrite) { overwrite_ = overwrite; }

    // Mixes `frames` interleaved frames of source audio in at frame `offset` of the period.
    void add(const float* in, size_t offset, size_t frames, const ChannelMatrix& matrix, double gain);

private:
    double* acc_;
    size_t sink_channels_;
    bool overwrite_ = false;
};

}  // namespace sinkcast
