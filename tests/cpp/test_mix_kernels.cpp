// The mix kernels' choice between float and double sums, checked directly:
// the budget's documented thresholds, and that the float paths, right under
// their budget and on inputs built to cancel, stay within the bound they claim.
// (The Python tests check the mix end to end against numpy; they cannot tell
// which path ran.)
//
// No framework: checks.h prints each check and "N passed, M failed"; exit
// code 0 only when everything passed.

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "audio/mix_kernels.h"
#include "checks.h"

using sinkcast_tests::check;

namespace {

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

using sinkcast::GroupSum;

bool all_float(const sinkcast::SourceGroup& g, double volume) {
    return sinkcast::cheapest_sum_within(g, volume, sinkcast::kRoundingBudget, true).how == GroupSum::float_tree;
}

GroupSum choice(const sinkcast::SourceGroup& g, double volume, double budget, bool tree_allowed) {
    return sinkcast::cheapest_sum_within(g, volume, budget, tree_allowed).how;
}

void check_thresholds() {
    std::printf("float or double (the numbers README.md gives)\n");
    // Full-scale sources: (ceil(log2 K) + 2) * 2^-24 * sum(gain) <= 8e-7.
    check(all_float(group_of(2, 4.4, 1.0f), 1.0), "2 sources, gains adding to 4.4: float");
    check(!all_float(group_of(2, 4.5, 1.0f), 1.0), "2 sources, gains adding to 4.5: double");
    check(all_float(group_of(4, 3.3, 1.0f), 1.0), "4 sources, gains adding to 3.3: float");
    check(!all_float(group_of(4, 3.4, 1.0f), 1.0), "4 sources, gains adding to 3.4: double");
    check(all_float(group_of(8, 2.6, 1.0f), 1.0), "8 sources, gains adding to 2.6: float");
    check(!all_float(group_of(8, 2.7, 1.0f), 1.0), "8 sources, gains adding to 2.7: double");
    // The volume multiplies every gain; quieter sources allow more gain.
    check(all_float(group_of(8, 1.3, 1.0f), 2.0), "8 sources, 1.3 at volume 2: float");
    check(!all_float(group_of(8, 1.4, 1.0f), 2.0), "8 sources, 1.4 at volume 2: double");
    check(all_float(group_of(8, 5.0, 0.5f), 1.0), "8 sources peaking at 0.5, 5.0: float");
    check(!all_float(group_of(8, 5.0, 0.6f), 1.0), "8 sources peaking at 0.6, 5.0: double");

    std::printf("float pairs: 3 * 2^-24 * sum(volume * gain * peak) <= the budget left\n");
    const double full = sinkcast::kRoundingBudget;
    check(choice(group_of(8, 4.4, 1.0f), 1.0, full, true) == GroupSum::float_pairs, "8 sources, 4.4: float pairs");
    check(choice(group_of(8, 4.5, 1.0f), 1.0, full, true) == GroupSum::in_double, "8 sources, 4.5: double");
    check(choice(group_of(8, 4.4, 1.0f), 1.0, full, false) == GroupSum::float_pairs,
          "with an accumulator: float pairs");
    check(choice(group_of(8, 2.0, 1.0f), 1.0, full, false) == GroupSum::float_pairs,
          "with an accumulator, 2.0: float pairs, never all-float");
    check(choice(group_of(8, 2.2, 1.0f), 1.0, full / 2, false) == GroupSum::float_pairs,
          "half the budget left, 2.2: float pairs");
    check(choice(group_of(8, 2.3, 1.0f), 1.0, full / 2, false) == GroupSum::in_double,
          "half the budget left, 2.3: double");
    check(sinkcast::rounding_bound(group_of(8, 4.0, 1.0f), 1.0, GroupSum::in_double) == 0.0,
          "double sums spend nothing");
    check(sinkcast::rounding_bound(group_of(1, 9.0, 1.0f), 1.0, GroupSum::float_pairs) == 0.0,
          "one source spends nothing");
    // A gain below float's normal range keeps fewer bits: its rounding is not
    // relative, and times loud samples it is not small (8 sources at FLT_MAX
    // erred by 9.5e-7 in float). Such groups sum in double.
    check(choice(group_of(8, 8 * 0.75 * 0x1p-149, FLT_MAX), 1.0, full, true) == GroupSum::in_double,
          "gains below FLT_MIN: double");
    check(choice(group_of(8, 8 * 0x1p-100, 1.0f), 0x1p-40, full, true) == GroupSum::in_double,
          "volume times gain below FLT_MIN: double");
    check(choice(group_of(8, 8 * 0x1p-100, 1.0f), 1.0, full, true) == GroupSum::float_tree,
          "small normal gains: float");
}

// Random sources scaled to 99 % of the float budget, with the last source
// cancelling most of the others' sum, so the result is small and carries the
// rounding of the large terms: the float paths' worst case. Every output must
// be within the 8e-7 bound of the exact mix (computed in long double).
// groups == 1: one group of k sources without an accumulator (all-float sums).
// groups > 1: k sources per group, the first ones into the double accumulator,
// the budget spent group by group as the mixer does (float pairs).
void check_float_path_error(int groups) {
    std::printf("%s right under the budget, cancelling inputs\n",
                groups == 1 ? "all-float sums" : ("float pairs, " + std::to_string(groups) + " groups").c_str());
    constexpr size_t kSamples = 4096;
    const double kBound = sinkcast::kRoundingBudget;
    const GroupSum expected = groups == 1 ? GroupSum::float_tree : GroupSum::float_pairs;
    std::mt19937_64 rng(11 + groups);
    std::uniform_real_distribution<double> unit(-1.0, 1.0), weight(0.2, 1.0), vol(0.3, 3.0);
    double worst = 0;
    int float_groups = 0, all_groups = 0, bounds_agree = 0;
    for (int k = 2; k <= sinkcast::kMaxGroup; ++k) {
        for (int t = 0; t < 40; ++t) {
            const int sources = k * groups;
            std::vector<std::vector<float>> in(static_cast<size_t>(sources), std::vector<float>(kSamples));
            std::vector<double> gain(static_cast<size_t>(sources));
            const double volume = vol(rng);
            for (double& g : gain) g = weight(rng);
            for (size_t n = 0; n < kSamples; ++n) {
                double partial = 0;
                for (int i = 0; i + 1 < sources; ++i) {
                    in[static_cast<size_t>(i)][n] = static_cast<float>(unit(rng));
                    partial += gain[static_cast<size_t>(i)] * in[static_cast<size_t>(i)][n];
                }
                // The last source cancels what it can, plus a little noise.
                double last = std::clamp(-partial / gain.back() + 1e-3 * unit(rng), -1.0, 1.0);
                in.back()[n] = static_cast<float>(last);
            }
            float peak = 0;
            for (const auto& x : in)
                for (float v : x) peak = std::max(peak, std::fabs(v));
            // Scale the gains so the bound of the whole mix is 99 % of the budget.
            double total = 0;
            for (double g : gain) total += volume * g * peak;
            const int roundings = groups == 1 ? static_cast<int>(std::ceil(std::log2(k))) + 2 : 3;
            const double scale = 0.99 * kBound / (roundings * std::ldexp(1.0, -24) * total);
            for (double& g : gain) g *= scale;

            std::vector<double> acc(kSamples);
            std::vector<float> out(kSamples);
            uint64_t clipped = 0;
            double budget = kBound;
            for (int j = 0; j < groups; ++j, ++all_groups) {
                sinkcast::SourceGroup g;
                g.count = k;
                for (int i = 0; i < k; ++i) {
                    const size_t s = static_cast<size_t>(j * k + i);
                    g.in[i] = in[s].data();
                    g.gain[i] = gain[s];
                    g.peak[i] = peak;
                }
                const bool last = j + 1 == groups;
                const sinkcast::SumChoice sum = sinkcast::cheapest_sum_within(g, volume, budget, groups == 1);
                budget -= sum.bound;
                float_groups += sum.how == expected;
                bounds_agree += sum.bound == sinkcast::rounding_bound(g, volume, sum.how);
                if (last)
                    sinkcast::finish_group(g, kSamples, groups == 1 ? nullptr : acc.data(), volume, out.data(),
                                           &clipped, sum.how);
                else
                    sinkcast::accumulate_group(g, kSamples, j == 0, acc.data(), sum.how);
            }
            for (size_t n = 0; n < kSamples; ++n) {
                long double exact = 0;
                for (int i = 0; i < sources; ++i)
                    exact += static_cast<long double>(volume) * gain[static_cast<size_t>(i)] *
                             in[static_cast<size_t>(i)][n];
                exact = std::clamp(exact, -1.0L, 1.0L);
                worst = std::max(worst, static_cast<double>(std::fabs(static_cast<long double>(out[n]) - exact)));
            }
        }
    }
    check(float_groups == all_groups, std::string("every group is summed in ") +
                                          (groups == 1 ? "float" : "float pairs") + " (" +
                                          std::to_string(float_groups) + " of " + std::to_string(all_groups) + ")");
    check(bounds_agree == all_groups, "the bound each choice spends is rounding_bound()'s");
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
    double peak = sinkcast::finish_group(g, 4, nullptr, 1.0, out.data(), &clipped, GroupSum::float_tree);
    check(out[0] == 0.75f && out[1] == 1.0f && out[2] == -1.0f && out[3] == 0.4f, "sums clipped to full scale");
    check(clipped == 2, "two samples counted as clipped");
    check(std::fabs(peak - 1.4) < 1e-6, "peak is the largest |sum| before clipping");
}

// The largest magnitude is tracked in vectors (as bits, see store_and_clip), so
// every length, every position of the peak and either sign must give the
// exact max |value|, and the clip count must agree with it.
void check_peak_at_every_position() {
    std::printf("peak and clip count, one source, every length 1-80 and position\n");
    int wrong_peak = 0, wrong_clip = 0, wrong_out = 0, cases = 0;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> quiet(-0.25f, 0.25f);
    for (size_t n = 1; n <= 80; ++n) {
        for (size_t at = 0; at < n; ++at) {
            for (float loud : {0.75f, -0.75f, 1.5f, -1.5f, FLT_MAX}) {
                std::vector<float> in(n), out(n);
                for (float& v : in) v = quiet(rng);
                in[at] = loud;
                sinkcast::SourceGroup g;
                g.count = 1;
                g.in[0] = in.data();
                g.gain[0] = 2.0;  // FLT_MAX * 2 overflows: infinity, clipped
                g.peak[0] = std::fabs(loud);
                uint64_t clipped = 0;
                double peak = sinkcast::finish_group(g, n, nullptr, 1.0, out.data(), &clipped, GroupSum::in_double);
                float largest = 0;
                uint64_t beyond = 0;
                for (float v : in) {
                    float scaled = 2.0f * v;
                    largest = std::max(largest, std::fabs(scaled));
                    beyond += std::fabs(scaled) > 1.0f;
                }
                wrong_peak += peak != static_cast<double>(largest);
                wrong_clip += clipped != beyond;
                for (size_t i = 0; i < n; ++i) wrong_out += out[i] != std::clamp(2.0f * in[i], -1.0f, 1.0f);
                ++cases;
            }
        }
    }
    check(wrong_peak == 0, "peak exact in all " + std::to_string(cases) + " cases (" + std::to_string(wrong_peak) +
                               " wrong)");
    check(wrong_clip == 0, "clip count exact (" + std::to_string(wrong_clip) + " wrong)");
    check(wrong_out == 0, "output clipped gain * input (" + std::to_string(wrong_out) + " samples wrong)");
}

}  // namespace

int main() {
    check_thresholds();
    check_float_path_error(1);
    check_float_path_error(2);
    check_float_path_error(3);
    check_clip();
    check_peak_at_every_position();
    return sinkcast_tests::checks_summary();
}
