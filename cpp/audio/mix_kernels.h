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
    float peak[kMaxGroup];  // no |in_k[i]| is larger (a bound); for rounding_bound(), the kernels ignore it
};

// How a group's products are summed. Sums in double are exact to float
// precision; float arithmetic does twice the samples per instruction and
// needs no widening, at the price of a rounding error whose worst case grows
// with the gains and the sources' peaks (rounding_bound()).
enum class GroupSum {
    in_double,    // every product and sum in double
    float_pairs,  // sources summed two by two in float, the pairs in double
    float_tree,   // every sum in float; only for a group without an accumulator
};

// What rounding may cost one output sample of a mix, summed over all its
// groups: the mix's contract is 1e-6 from a float64 reference, and the
// output's own rounding to float takes up to 6e-8 of that.
constexpr double kRoundingBudget = 8e-7;

// The worst-case rounding error of summing `group` (gains times `volume`) the
// way `how` says, for any samples within the group's peaks. 0 for in_double
// and for a single source (whose error is relative to the output itself:
// within 1.2e-7 of it, far inside the output's own precision).
double rounding_bound(const SourceGroup& group, double volume, GroupSum how);

struct SumChoice {
    GroupSum how;
    double bound;  // rounding_bound() of that way
};

// The cheapest way to sum `group` whose rounding bound fits in `budget`.
// float_tree only when `tree_allowed` (the group has no accumulator). With
// the whole budget, full-scale sources go all-float when their gains times
// the volume add up to at most 4.4 (2 sources), 3.3 (4) or 2.6 (8), and in
// float pairs up to 4.4 at any count; quieter sources allow more.
SumChoice cheapest_sum_within(const SourceGroup& group, double volume, double budget, bool tree_allowed);

// acc[i] = (first ? 0 : acc[i]) + sum_k gain_k * in_k[i] for i < samples;
// count >= 1; `how` is in_double or float_pairs.
void accumulate_group(const SourceGroup& group, size_t samples, bool first, double* acc, GroupSum how);

// out[i] = float(clip(volume * ((acc ? acc[i] : 0) + sum_k gain_k * in_k[i]), -1, 1)),
// summed as `how` says (float_tree only without acc; one source without acc
// is always scaled in float). Any count from 0 and a null acc are allowed
// (both together: silence). Returns the largest |value| before clipping and
// adds the samples beyond full scale to *clipped.
double finish_group(const SourceGroup& group, size_t samples, const double* acc, double volume, float* out,
                    uint64_t* clipped, GroupSum how);

}  // namespace sinkcast
