// Mapping of a source's 1-8 channels onto a sink's 1-2 channels, and the
// inner loop of the mixer that adds one source into a sink's accumulator.
#pragma once

#include <cstddef>

namespace sinkcast {

constexpr int kMaxSourceChannels = 8;
constexpr int kMaxSinkChannels = 2;

// coefficient[out][in]: how much of source channel `in` goes to sink channel `out`.
struct ChannelMatrix {
    int source_channels = 1;
    int sink_channels = 1;
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

// acc[f * sink_channels + o] += gain * sum_i matrix[o][i] * in[f * source_channels + i]
// for `frames` frames of interleaved float input. The accumulator is double so
// the mix of many sources stays exact to float precision (DESIGN.md's
// clip(volume * sum) has no rounding of its own).
void accumulate(const float* in, size_t frames, const ChannelMatrix& matrix, double gain, double* acc);

// out[i] = float(clip(volume * acc[i], -1, 1)). Returns the largest |volume * acc[i]|
// before clipping (> 1 means something clipped).
double finish_mix(const double* acc, size_t samples, double volume, float* out);

// Hot loops are compiled twice on x86-64 (baseline SSE2 and AVX2+FMA) and
// picked at load time, so one wheel is fast on every CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
#define SINKCAST_HOT_LOOP __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SINKCAST_HOT_LOOP
#endif

}  // namespace sinkcast
