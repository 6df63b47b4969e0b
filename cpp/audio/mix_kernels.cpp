#include "audio/mix_kernels.h"

#include <algorithm>

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

template <int K, bool kFirst>
[[gnu::always_inline]] inline void accumulate(const SourceGroup& group, size_t n, double* acc) {
    const float* in[K];
    double gain[K];
    for (int k = 0; k < K; ++k) {
        in[k] = group.in[k];
        gain[k] = group.gain[k];
    }
    for (size_t i = 0; i < n; ++i) {
        double sum = tree_sum<0, K>([&](int k) { return gain[k] * in[k][i]; });
        acc[i] = kFirst ? sum : acc[i] + sum;
    }
}

// out[i] = clip(sample(i), -1, 1), in float. Returns the largest |sample(i)|
// and adds the number of samples beyond full scale to *clipped; both are judged
// on the float value (a sum beyond 1 by less than float resolution rounds to
// exactly 1.0: the output is the same, and it is not counted).
// The loop only stores and tracks the extremes, so it runs at the speed of a
// copy; the clip is a second pass over the output, in the rare periods that
// need one.
template <typename Sample>
[[gnu::always_inline]] inline float store_and_clip(size_t n, Sample&& sample, float* out, uint64_t* clipped) {
    float hi = 0, lo = 0;
#pragma GCC unroll 4
    for (size_t i = 0; i < n; ++i) {
        float v = sample(i);
        hi = hi > v ? hi : v;
        lo = lo < v ? lo : v;
        out[i] = v;
    }
    float peak = hi > -lo ? hi : -lo;
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

// Sums in double with the volume folded into the gains, then rounds once to
// float, so the clip, peak and count run on twice as many samples per vector.
template <int K, bool kAcc>
[[gnu::always_inline]] inline double finish(const SourceGroup& group, size_t n, const double* acc, double volume,
                                            float* out, uint64_t* clipped) {
    const float* in[K > 0 ? K : 1];
    double gain[K > 0 ? K : 1];
    for (int k = 0; k < K; ++k) {
        in[k] = group.in[k];
        gain[k] = volume * group.gain[k];
    }
    return store_and_clip(
        n,
        [&](size_t i) {
            double sum = kAcc ? volume * acc[i] : 0.0;
            if constexpr (K > 0) sum += tree_sum<0, K>([&](int k) { return gain[k] * in[k][i]; });
            return static_cast<float>(sum);
        },
        out, clipped);
}

// The float flavour of finish<K, false>, for one source and for the groups
// float_sum_is_exact_enough() admits.
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
[[gnu::always_inline]] inline void accumulate_k(const SourceGroup& group, size_t n, bool first, double* acc) {
    if (first)
        accumulate<K, true>(group, n, acc);
    else
        accumulate<K, false>(group, n, acc);
}

template <int K>
[[gnu::always_inline]] inline double finish_k(const SourceGroup& group, size_t n, const double* acc, double volume,
                                              float* out, uint64_t* clipped) {
    if (acc) return finish<K, true>(group, n, acc, volume, out, clipped);
    if (float_sum_is_exact_enough(group, volume)) return finish_in_float<K>(group, n, volume, out, clipped);
    return finish<K, false>(group, n, acc, volume, out, clipped);
}

SINKCAST_HOT_LOOP void accumulate_any(const SourceGroup& group, size_t n, bool first, double* acc) {
    static_assert(kMaxGroup == 8, "one case per group size");
    switch (group.count) {
        case 1: return accumulate_k<1>(group, n, first, acc);
        case 2: return accumulate_k<2>(group, n, first, acc);
        case 3: return accumulate_k<3>(group, n, first, acc);
        case 4: return accumulate_k<4>(group, n, first, acc);
        case 5: return accumulate_k<5>(group, n, first, acc);
        case 6: return accumulate_k<6>(group, n, first, acc);
        case 7: return accumulate_k<7>(group, n, first, acc);
        case 8: return accumulate_k<8>(group, n, first, acc);
        default: return;
    }
}

SINKCAST_HOT_LOOP double finish_any(const SourceGroup& group, size_t n, const double* acc, double volume,
                                    float* out, uint64_t* clipped) {
    switch (group.count) {
        case 0:
            if (acc) return finish<0, true>(group, n, acc, volume, out, clipped);
            std::fill(out, out + n, 0.0f);  // nothing to mix: silence
            return 0.0;
        case 1:
            // The most common sink: one source, no accumulator. Always in float,
            // whatever its gain: one product is within 1.2e-7 of exact.
            if (!acc) return finish_in_float<1>(group, n, volume, out, clipped);
            return finish<1, true>(group, n, acc, volume, out, clipped);
        case 2: return finish_k<2>(group, n, acc, volume, out, clipped);
        case 3: return finish_k<3>(group, n, acc, volume, out, clipped);
        case 4: return finish_k<4>(group, n, acc, volume, out, clipped);
        case 5: return finish_k<5>(group, n, acc, volume, out, clipped);
        case 6: return finish_k<6>(group, n, acc, volume, out, clipped);
        case 7: return finish_k<7>(group, n, acc, volume, out, clipped);
        case 8: return finish_k<8>(group, n, acc, volume, out, clipped);
        default: return 0.0;
    }
}

}  // namespace

// Summing K samples in float, each times a float gain g_k (c_k = volume * gain_k
// rounded once), rounds at most depth + 2 times on the path of any one term: its
// gain, its product, and the depth = ceil(log2 K) additions of tree_sum(). With
// every |sample of source k| <= peak_k the error is therefore at most
// (depth + 2) * u * sum_k c_k * peak_k, u = 2^-24, to first order (the next
// order is below 3e-13 here). That holds for every sample, so it is decided once per
// group. The bound is what cancellation costs: sources that nearly cancel leave
// a small sum with the rounding error of the large terms (test_mix.py has such
// a case).
bool float_sum_is_exact_enough(const SourceGroup& group, double volume) {
    constexpr double kUnitRoundoff = 0x1p-24;
    constexpr double kBudget = 8e-7;
    double total = 0;
    for (int k = 0; k < group.count; ++k) total += volume * group.gain[k] * group.peak[k];
    return (tree_depth(group.count) + 2) * kUnitRoundoff * total <= kBudget;
}

void accumulate_group(const SourceGroup& group, size_t samples, bool first, double* acc) {
    accumulate_any(group, samples, first, acc);
}

double finish_group(const SourceGroup& group, size_t samples, const double* acc, double volume, float* out,
                    uint64_t* clipped) {
    return finish_any(group, samples, acc, volume, out, clipped);
}

}  // namespace sinkcast
