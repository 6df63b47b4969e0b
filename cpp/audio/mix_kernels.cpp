#include "audio/mix_kernels.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include "audio/hot_loop.h"

namespace sinkcast {

namespace {

// The loops are written once as inlined templates and instantiated inside the
// two hot-loop functions at the bottom, so every variant is compiled for each
// instruction set. All are branch-free per sample so they vectorize (this file
// is built with finite math: push() rejects NaN and Inf).

// Sums K terms as a balanced tree, so the additions of one sample depend on
// each other in ceil(log2 K) steps instead of K - 1: a chain of eight dependent
// additions, at several cycles each, held the loop up more than the loads did.
// term(k) gives term k; the tree is built at compile time (an array of terms
// and loops over it kept the compiler from vectorizing the sample loop).
template <int First, int K, typename Term>
[[gnu::always_inline]] inline auto tree_sum(Term&& term) {
    if constexpr (K == 1)
        return term(First);
    else
        return tree_sum<First, K / 2>(term) + tree_sum<First + K / 2, K - K / 2>(term);
}

// ceil(log2 K): how many additions of tree_sum() any one term goes through.
constexpr int tree_depth(int k) { return k <= 1 ? 0 : 1 + tree_depth((k + 1) / 2); }

// Sample i of sum_k gain_k * in_k[i], in double or in float pairs (GroupSum).
// Float pairs: each pair of sources is summed in float with float gains, and
// the pairs (and an odd last source) in double. A float add and multiply work
// on twice the samples per instruction of a double one and need no widening,
// which made a 16-source mix 1.6 times faster.
template <int K, bool kPairs>
[[gnu::always_inline]] inline double group_sum(const float* const* in, const double* gain, const float* gain_f,
                                               size_t i) {
    if constexpr (!kPairs || K < 2) {
        return tree_sum<0, K>([&](int k) { return gain[k] * in[k][i]; });
    } else {
        double sum = tree_sum<0, K / 2>([&](int p) {
            return static_cast<double>(gain_f[2 * p] * in[2 * p][i] + gain_f[2 * p + 1] * in[2 * p + 1][i]);
        });
        if constexpr (K % 2 == 1) sum += gain[K - 1] * in[K - 1][i];
        return sum;
    }
}

template <int K, bool kFirst, bool kPairs>
[[gnu::always_inline]] inline void accumulate(const SourceGroup& group, size_t n, double* acc) {
    const float* in[K];
    double gain[K];
    float gain_f[K];
    for (int k = 0; k < K; ++k) {
        in[k] = group.in[k];
        gain[k] = group.gain[k];
        gain_f[k] = static_cast<float>(gain[k]);
    }
    for (size_t i = 0; i < n; ++i) {
        double sum = group_sum<K, kPairs>(in, gain, gain_f, i);
        acc[i] = kFirst ? sum : acc[i] + sum;
    }
}

// out[i] = clip(sample(i), -1, 1), in float. Returns the largest |sample(i)|
// and adds the number of samples beyond full scale to *clipped; both are judged
// on the float value (a sum beyond 1 by less than float resolution rounds to
// exactly 1.0: the output is the same, and it is not counted).
// The loop only stores and tracks the largest magnitude, so it runs at the
// speed of a copy; the clip is a second pass over the output, in the rare
// periods that need one.
// The magnitude is tracked as bits: without the sign bit a finite float's bits
// order as its magnitude does, and an integer max takes one cycle where a float
// max takes four on Intel cores. In a chain of one max per vector that latency
// set the loop's speed: a one-source mix took 4.7x a memcpy on a Xeon, against
// 1.7x on an EPYC (where a float max takes one cycle too).
template <typename Sample>
[[gnu::always_inline]] inline float store_and_clip(size_t n, Sample&& sample, float* out, uint64_t* clipped) {
    uint32_t top = 0;
#pragma GCC unroll 4
    for (size_t i = 0; i < n; ++i) {
        float v = sample(i);
        out[i] = v;
        uint32_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        bits &= 0x7fffffffu;
        top = top > bits ? top : bits;
    }
    float peak;
    std::memcpy(&peak, &top, sizeof peak);
    if (peak > 1.0f) {
        uint32_t over = 0;  // n is at most one block, far below 2^32
        for (size_t i = 0; i < n; ++i) {
            float v = out[i];
            over += (v > 1.0f) | (v < -1.0f);
            v = v < -1.0f ? -1.0f : v;
            out[i] = v > 1.0f ? 1.0f : v;
        }
        *clipped += over;
    }
    return peak;
}

// Sums in double (or float pairs) with the volume folded into the gains, then
// rounds once to float, so the clip, peak and count run on twice as many
// samples per vector.
template <int K, bool kAcc, bool kPairs>
[[gnu::always_inline]] inline double finish(const SourceGroup& group, size_t n, const double* acc, double volume,
                                            float* out, uint64_t* clipped) {
    const float* in[K > 0 ? K : 1];
    double gain[K > 0 ? K : 1];
    float gain_f[K > 0 ? K : 1];
    for (int k = 0; k < K; ++k) {
        in[k] = group.in[k];
        gain[k] = volume * group.gain[k];
        gain_f[k] = static_cast<float>(gain[k]);
    }
    return store_and_clip(
        n,
        [&](size_t i) {
            double sum = kAcc ? volume * acc[i] : 0.0;
            if constexpr (K > 0) sum += group_sum<K, kPairs>(in, gain, gain_f, i);
            return static_cast<float>(sum);
        },
        out, clipped);
}

// The all-float flavour of finish<K, false, ...>, for one source and for
// GroupSum::float_tree.
template <int K>
[[gnu::always_inline]] inline float finish_in_float(const SourceGroup& group, size_t n, double volume, float* out,
                                                    uint64_t* clipped) {
    const float* in[K];
    float gain[K];
    for (int k = 0; k < K; ++k) {
        in[k] = group.in[k];
        gain[k] = static_cast<float>(volume * group.gain[k]);
    }
    return store_and_clip(
        n,
        [&](size_t i) {
            return tree_sum<0, K>([&](int k) { return gain[k] * in[k][i]; });
        },
        out, clipped);
}

// The per-count variants, each choosing its first-pass or accumulator flavour.
template <int K>
[[gnu::always_inline]] inline void accumulate_k(const SourceGroup& group, size_t n, bool first, double* acc,
                                                GroupSum how) {
    const bool pairs = how != GroupSum::in_double;  // float_tree is never asked for with an accumulator
    if (first && pairs) return accumulate<K, true, true>(group, n, acc);
    if (first) return accumulate<K, true, false>(group, n, acc);
    if (pairs) return accumulate<K, false, true>(group, n, acc);
    return accumulate<K, false, false>(group, n, acc);
}

template <int K>
[[gnu::always_inline]] inline double finish_k(const SourceGroup& group, size_t n, const double* acc, double volume,
                                              float* out, uint64_t* clipped, GroupSum how) {
    if (!acc && how == GroupSum::float_tree) return finish_in_float<K>(group, n, volume, out, clipped);
    const bool pairs = how != GroupSum::in_double;
    if (acc && pairs) return finish<K, true, true>(group, n, acc, volume, out, clipped);
    if (acc) return finish<K, true, false>(group, n, acc, volume, out, clipped);
    if (pairs) return finish<K, false, true>(group, n, acc, volume, out, clipped);
    return finish<K, false, false>(group, n, acc, volume, out, clipped);
}

SINKCAST_HOT_LOOP void accumulate_any(const SourceGroup& group, size_t n, bool first, double* acc, GroupSum how) {
    static_assert(kMaxGroup == 8, "one case per group size");
    switch (group.count) {
        case 1:  // one source: nothing to pair
            if (first) return accumulate<1, true, false>(group, n, acc);
            return accumulate<1, false, false>(group, n, acc);
        case 2: return accumulate_k<2>(group, n, first, acc, how);
        case 3: return accumulate_k<3>(group, n, first, acc, how);
        case 4: return accumulate_k<4>(group, n, first, acc, how);
        case 5: return accumulate_k<5>(group, n, first, acc, how);
        case 6: return accumulate_k<6>(group, n, first, acc, how);
        case 7: return accumulate_k<7>(group, n, first, acc, how);
        case 8: return accumulate_k<8>(group, n, first, acc, how);
        default: return;
    }
}

SINKCAST_HOT_LOOP double finish_any(const SourceGroup& group, size_t n, const double* acc, double volume,
                                    float* out, uint64_t* clipped, GroupSum how) {
    switch (group.count) {
        case 0:
            if (acc) return finish<0, true, false>(group, n, acc, volume, out, clipped);
            std::fill(out, out + n, 0.0f);  // nothing to mix: silence
            return 0.0;
        case 1:
            // The most common sink: one source, no accumulator. Always in float,
            // whatever its gain: one product is within 1.2e-7 of exact.
            if (!acc) return finish_in_float<1>(group, n, volume, out, clipped);
            return finish<1, true, false>(group, n, acc, volume, out, clipped);
        case 2: return finish_k<2>(group, n, acc, volume, out, clipped, how);
        case 3: return finish_k<3>(group, n, acc, volume, out, clipped, how);
        case 4: return finish_k<4>(group, n, acc, volume, out, clipped, how);
        case 5: return finish_k<5>(group, n, acc, volume, out, clipped, how);
        case 6: return finish_k<6>(group, n, acc, volume, out, clipped, how);
        case 7: return finish_k<7>(group, n, acc, volume, out, clipped, how);
        case 8: return finish_k<8>(group, n, acc, volume, out, clipped, how);
        default: return 0.0;
    }
}

}  // namespace

// Rounding in float: a float gain g_k (volume * gain_k rounded once) times a
// sample is rounded once more, and each float addition on a term's way to the
// sum rounds again: ceil(log2 K) additions in tree_sum() (float_tree), one in
// a pair (float_pairs); double arithmetic adds nothing at this precision. With
// every |sample of source k| <= peak_k the error is therefore at most
// roundings * u * sum_k g_k * peak_k, u = 2^-24, to first order (the next
// order is below 3e-13 here). That holds for every sample, so it is decided
// once per group. The bound is what cancellation costs: sources that nearly
// cancel leave a small sum with the rounding error of the large terms
// (test_mix.py has such a case).
//
// The relative rounding of a gain only holds for a float gain in the normal
// range: one below FLT_MIN (a gain or volume of 1e-38, allowed) keeps fewer
// bits, and times loud samples its error is no longer small. Such a group is
// summed in double.
namespace {

// sum_k volume * gain_k * peak_k, which the roundings multiply; infinite when a
// gain as the kernels round it (gain_k alone into an accumulator, volume *
// gain_k when finishing) is below float's normal range.
double rounding_weight(const SourceGroup& group, double volume) {
    auto subnormal_in_float = [](double g) { return g != 0.0 && std::fabs(g) < FLT_MIN; };
    double total = 0;
    for (int k = 0; k < group.count; ++k) {
        if (subnormal_in_float(group.gain[k]) || subnormal_in_float(volume * group.gain[k]))
            return std::numeric_limits<double>::infinity();
        total += volume * group.gain[k] * group.peak[k];
    }
    return total;
}

// Roundings on any one term's way to the sum, times u = 2^-24.
double rounding_per_weight(GroupSum how, int count) {
    const int roundings = 2 + (how == GroupSum::float_tree ? tree_depth(count) : 1);
    return roundings * 0x1p-24;
}

}  // namespace

double rounding_bound(const SourceGroup& group, double volume, GroupSum how) {
    if (how == GroupSum::in_double || group.count < 2) return 0.0;  // one source: see finish_any()
    return rounding_per_weight(how, group.count) * rounding_weight(group, volume);
}

SumChoice cheapest_sum_within(const SourceGroup& group, double volume, double budget, bool tree_allowed) {
    if (group.count < 2) return {GroupSum::in_double, 0.0};  // one source: see finish_any()
    const double weight = rounding_weight(group, volume);
    if (tree_allowed) {
        const double bound = rounding_per_weight(GroupSum::float_tree, group.count) * weight;
        if (bound <= budget) return {GroupSum::float_tree, bound};
    }
    const double bound = rounding_per_weight(GroupSum::float_pairs, group.count) * weight;
    if (bound <= budget) return {GroupSum::float_pairs, bound};
    return {GroupSum::in_double, 0.0};
}

void accumulate_group(const SourceGroup& group, size_t samples, bool first, double* acc, GroupSum how) {
    accumulate_any(group, samples, first, acc, how);
}

double finish_group(const SourceGroup& group, size_t samples, const double* acc, double volume, float* out,
                    uint64_t* clipped, GroupSum how) {
    return finish_any(group, samples, acc, volume, out, clipped, how);
}

}  // namespace sinkcast
