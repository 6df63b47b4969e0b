#include "audio/mix_kernels.h"

#include <algorithm>

#include "audio/hot_loop.h"

namespace sinkcast {

namespace {

// The loops are written once as inlined templates and instantiated inside the
// two hot-loop functions at the bottom, so every variant is compiled for each
// instruction set. All are branch-free per sample so they vectorize (this file
// is built with finite math: push() rejects NaN and Inf).

template <int K, bool kFirst>
[[gnu::always_inline]] inline void accumulate(const SourceGroup& group, size_t n, double* acc) {
    const float* in[K];
    double gain[K];
    for (int k = 0; k < K; ++k) {
        in[k] = group.in[k];
        gain[k] = group.gain[k];
    }
    for (size_t i = 0; i < n; ++i) {
        double sum = kFirst ? gain[0] * in[0][i] : acc[i] + gain[0] * in[0][i];
        for (int k = 1; k < K; ++k) sum += gain[k] * in[k][i];
        acc[i] = sum;
    }
}

// out = clip(k * sample(i), -1, 1), in float. Returns the largest |k * sample|
// and adds the number of samples beyond full scale to *clipped. Both are judged
// on the float value: a sum that exceeds 1 by less than float resolution rounds
// to exactly 1.0 and is not counted, as the output is the same either way.
template <typename Sample>
[[gnu::always_inline]] inline float scale_and_clip(size_t n, float k, Sample&& sample, float* out,
                                                   uint64_t* clipped) {
    float peak = 0;
    uint32_t over = 0;  // n is at most one block, far below 2^32
    for (size_t i = 0; i < n; ++i) {
        float v = k * sample(i);
        float a = v < 0 ? -v : v;
        peak = peak > a ? peak : a;
        over += a > 1.0f;
        v = v < -1.0f ? -1.0f : v;
        v = v > 1.0f ? 1.0f : v;
        out[i] = v;
    }
    *clipped += over;
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
    return scale_and_clip(
        n, 1.0f,
        [&](size_t i) {
            double sum = kAcc ? volume * acc[i] : 0.0;
            for (int k = 0; k < K; ++k) sum += gain[k] * in[k][i];
            return static_cast<float>(sum);
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
    return acc ? finish<K, true>(group, n, acc, volume, out, clipped)
               : finish<K, false>(group, n, acc, volume, out, clipped);
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
            if (!acc) {  // the most common sink: one source, no accumulator, in float
                const float* in = group.in[0];
                return scale_and_clip(n, static_cast<float>(volume * group.gain[0]), [&](size_t i) { return in[i]; },
                                      out, clipped);
            }
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

void accumulate_group(const SourceGroup& group, size_t samples, bool first, double* acc) {
    accumulate_any(group, samples, first, acc);
}

double finish_group(const SourceGroup& group, size_t samples, const double* acc, double volume, float* out,
                    uint64_t* clipped) {
    return finish_any(group, samples, acc, volume, out, clipped);
}

}  // namespace sinkcast
