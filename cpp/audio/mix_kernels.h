// The loops that carry a sink's audio from its sources' rings to its output.
// Each is compiled for AVX2+FMA and for baseline x86-64 (hot_loop.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace sinkcast {

// How many sources one pass reads. Each pass loads and stores the whole
// double accumulator, which costs more than reading a float source; reading
// eight sources per pass spreads that cost over eight, and a sink of up to
// eight such sources never touches the accumulator at all.
constexpr int kMaxGroup = 8;

// Up to kMaxGroup runs of interleaved samples with identity channel maps,
// all of the same length, and their gains. Only the first `count` entries are
// read, so they are left uninitialized: clearing them costs more than a small mix.
struct SourceGroup {
    const float* in[kMaxGroup];
    double gain[kMaxGroup];
    int count = 0;
    float peak[kMaxGroup];  // no |in_k[i]| is larger (a bound)
};

// acc[i] = (first ? 0 : acc[i]) + sum_k gain_k * in_k[i] for i < samples; count >= 1.
void accumulate_group(const SourceGroup& group, size_t samples, bool first, double* acc);

// out[i] = float(clip(volume * ((acc ? acc[i] : 0) + sum_k gain_k * in_k[i]), -1, 1)).
// Any count from 0 and a null acc are allowed (both together: silence). Returns
// the largest |value| before clipping and adds the samples beyond full scale to
// *clipped. Sums are in double so the mix of many sources stays exact to float
// precision, with two exceptions that stay within the mix's contract and are
// about twice as fast:
// - one source without an accumulator is scaled in float, within 1.2e-7 of
//   exact (one product of two roundings), far inside the output's own precision;
// - a group without an accumulator is summed in float when the worst-case
//   rounding error of that sum, which grows with the count, the gains and the
//   sources' peaks, stays under 8e-7 (the mix's contract is 1e-6 from a float64
//   reference). Everyday mixes qualify: four full-scale sources whose gains
//   times the volume add up to 3.3, eight that add up to 2.6, or more gain for
//   quieter sources.
double finish_group(const SourceGroup& group, size_t samples, const double* acc, double volume, float* out,
                    uint64_t* clipped);

// Whether finish_group() sums this group in float when there is no accumulator:
// true when the worst-case rounding error of that sum is under 8e-7.
bool float_sum_is_exact_enough(const SourceGroup& group, double volume);

}  // namespace sinkcast
