// The mix kernels' choice between float and double sums, checked directly:
// the budget's documented thresholds, and that the float path, right under its
// budget and on inputs built to cancel, stays within the bound it claims.
// (The Python tests check the mix end to end against numpy; they cannot tell
// which path ran.)
//
// No framework: prints each check and "N passed, M failed"; exit code 0 only
// when everything passed.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "audio/mix_kernels.h"

namespace {

int g_passed = 0;
int g_failed = 0;

void check(bool ok, const std::string& what) {
    (ok ? g_passed : g_failed) += 1;
    std::printf("  %s %s\n", ok ? "ok  " : "FAIL", what.c_str());
}

// K sources of equal gain, summing to `total_gain`, all with the same peak.
sinkcast::SourceGroup group_of(int k, double total_gain, float peak) {
    sinkcast::SourceGroup g;
    g.count = k;
    for (int i = 0; i < k; ++i) {
        g.in[i] = nullptr;
        g.gain[i] = total_gain / k;
        g.peak[i] = peak;
    }
    return g;
}

void check_thresholds() {
    std::printf("float or double (the numbers README.md gives)\n");
    // Full-scale sources: (ceil(log2 K) + 2) * 2^-24 * sum(gain) <= 8e-7.
    check(sinkcast::float_sum_is_exact_enough(group_of(2, 4.4, 1.0f), 1.0), "2 sources, gains adding to 4.4: float");
    check(!sinkcast::float_sum_is_exact_enough(group_of(2, 4.5, 1.0f), 1.0), "2 sources, gains adding to 4.5: double");
    check(sinkcast::float_sum_is_exact_enough(group_of(4, 3.3, 1.0f), 1.0), "4 sources, gains adding to 3.3: float");
    check(!sinkcast::float_sum_is_exact_enough(group_of(4, 3.4, 1.0f), 1.0), "4 sources, gains adding to 3.4: double");
    check(sinkcast::float_sum_is_exact_enough(group_of(8, 2.6, 1.0f), 1.0), "8 sources, gains adding to 2.6: float");
    check(!sinkcast::float_sum_is_exact_enough(group_of(8, 2.7, 1.0f), 1.0), "8 sources, gains adding to 2.7: double");
    // The volume multiplies every gain; quieter sources allow more gain.
    check(sinkcast::float_sum_is_exact_enough(group_of(8, 1.3, 1.0f), 2.0), "8 sources, 1.3 at volume 2: float");
    check(!sinkcast::float_sum_is_exact_enough(group_of(8, 1.4, 1.0f), 2.0), "8 sources, 1.4 at volume 2: double");
    check(sinkcast::float_sum_is_exact_enough(group_of(8, 5.0, 0.5f), 1.0), "8 sources peaking at 0.5, 5.0: float");
    check(!sinkcast::float_sum_is_exact_enough(group_of(8, 5.0, 0.6f), 1.0), "8 sources peaking at 0.6, 5.0: double");
}

// Random groups scaled to 99 % of the float budget, with the last source
// cancelling most of the others' sum, so the result is small and carries the
// rounding of the large terms: the float path's worst case. Every output must
// be within the 8e-7 bound of the exact mix (computed in long double).
void check_float_path_error() {
    std::printf("float path right under its budget, cancelling inputs\n");
    constexpr size_t kSamples = 4096;
    constexpr double kBound = 8e-7;
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<double> unit(-1.0, 1.0), weight(0.2, 1.0), vol(0.3, 3.0);
    double worst = 0;
    int float_groups = 0, trials = 0;
    for (int k = 2; k <= sinkcast::kMaxGroup; ++k) {
        for (int t = 0; t < 40; ++t, ++trials) {
            std::vector<std::vector<float>> in(static_cast<size_t>(k), std::vector<float>(kSamples));
            sinkcast::SourceGroup g;
            g.count = k;
            const double volume = vol(rng);
            for (int i = 0; i < k; ++i) g.gain[i] = weight(rng);
            for (size_t n = 0; n < kSamples; ++n) {
                double partial = 0;
                for (int i = 0; i + 1 < k; ++i) {
                    in[static_cast<size_t>(i)][n] = static_cast<float>(unit(rng));
                    partial += g.gain[i] * in[static_cast<size_t>(i)][n];
                }
                // The last source cancels what it can, plus a little noise.
                double last = std::clamp(-partial / g.gain[k - 1] + 1e-3 * unit(rng), -1.0, 1.0);
                in[static_cast<size_t>(k - 1)][n] = static_cast<float>(last);
            }
            float peak = 0;
            for (int i = 0; i < k; ++i) {
                g.in[i] = in[static_cast<size_t>(i)].data();
                for (float x : in[static_cast<size_t>(i)]) peak = std::max(peak, std::fabs(x));
            }
            for (int i = 0; i < k; ++i) g.peak[i] = peak;
            // Scale the gains so the bound is 99 % of the budget.
            double total = 0;
            for (int i = 0; i < k; ++i) total += volume * g.gain[i] * g.peak[i];
            const int depth = static_cast<int>(std::ceil(std::log2(k)));
            const double scale = 0.99 * kBound / ((depth + 2) * std::ldexp(1.0, -24) * total);
            for (int i = 0; i < k; ++i) g.gain[i] *= scale;
            float_groups += sinkcast::float_sum_is_exact_enough(g, volume);

            std::vector<float> out(kSamples);
            uint64_t clipped = 0;
            sinkcast::finish_group(g, kSamples, nullptr, volume, out.data(), &clipped);
            for (size_t n = 0; n < kSamples; ++n) {
                long double exact = 0;
                for (int i = 0; i < k; ++i)
                    exact += static_cast<long double>(volume) * g.gain[i] * in[static_cast<size_t>(i)][n];
                exact = std::clamp(exact, -1.0L, 1.0L);
                worst = std::max(worst, static_cast<double>(std::fabs(static_cast<long double>(out[n]) - exact)));
            }
        }
    }
    check(float_groups == trials, "every group at 99 % of the budget is summed in float (" +
                                      std::to_string(float_groups) + " of " + std::to_string(trials) + ")");
    char line[128];
    std::snprintf(line, sizeof line, "largest error %.3g <= bound %.3g", worst, kBound);
    check(worst <= kBound, line);
}

void check_clip() {
    std::printf("clip, count and peak\n");
    std::vector<float> a = {0.5f, 0.9f, -0.9f, 0.2f}, b = {0.25f, 0.5f, -0.5f, 0.2f};
    sinkcast::SourceGroup g;
    g.count = 2;
    g.in[0] = a.data();
    g.in[1] = b.data();
    g.gain[0] = g.gain[1] = 1.0;
    g.peak[0] = g.peak[1] = 1.0f;
    std::vector<float> out(4);
    uint64_t clipped = 0;
    double peak = sinkcast::finish_group(g, 4, nullptr, 1.0, out.data(), &clipped);
    check(out[0] == 0.75f && out[1] == 1.0f && out[2] == -1.0f && out[3] == 0.4f, "sums clipped to full scale");
    check(clipped == 2, "two samples counted as clipped");
    check(std::fabs(peak - 1.4) < 1e-6, "peak is the largest |sum| before clipping");
}

}  // namespace

int main() {
    check_thresholds();
    check_float_path_error();
    check_clip();
    std::printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
