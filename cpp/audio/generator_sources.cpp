#include "audio/generator_sources.h"

#include <algorithm>
#include <cmath>

namespace sinkcast {

namespace {
constexpr size_t kChunk = 256;  // generate in small stack chunks, then mix
constexpr double kTwoPi = 6.283185307179586476925286766559;
}  // namespace

ToneSource::ToneSource(double frequency_hz, double amplitude)
    : Source(1),
      frequency_hz_(frequency_hz),
      amplitude_(amplitude),
      step_cos_(std::cos(kTwoPi * frequency_hz / kEngineRate)),
      step_sin_(std::sin(kTwoPi * frequency_hz / kEngineRate)) {}

size_t ToneSource::mix_into(RouteCursor& cursor, size_t frames, const ChannelMatrix& matrix, double gain,
                            MixTarget& target) {
    // A rotating phasor instead of one sin() per sample (~10x cheaper). It is
    // re-anchored to the exact phase every kAnchorSamples samples of the route's
    // own count, so rounding cannot build up (it stays near 1e-14) and the output
    // does not depend on how the caller splits the periods.
    constexpr uint64_t kAnchorSamples = 256;
    float chunk[kChunk];
    const double step = frequency_hz_ / kEngineRate;
    double c = cursor.tone_cos, s = cursor.tone_sin;
    for (size_t done = 0; done < frames;) {
        size_t n = std::min(kChunk, frames - done);
        for (size_t i = 0; i < n; ++i) {
            if (cursor.tone_samples % kAnchorSamples == 0) {
                c = std::cos(kTwoPi * cursor.phase);
                s = std::sin(kTwoPi * cursor.phase);
            }
            chunk[i] = static_cast<float>(amplitude_ * s);
            const double next_c = c * step_cos_ - s * step_sin_;
            s = s * step_cos_ + c * step_sin_;
            c = next_c;
            cursor.phase += step;
            if (cursor.phase >= 1.0) cursor.phase -= 1.0;  // keep precision over hours
            ++cursor.tone_samples;
        }
        target.add(chunk, done, n, matrix, gain);
        done += n;
    }
    cursor.tone_cos = c;
    cursor.tone_sin = s;
    return frames;
}

NoiseSource::NoiseSource(double amplitude, uint64_t seed) : Source(1), amplitude_(amplitude), seed_(seed) {}

void NoiseSource::attach(RouteCursor& cursor) {
    // xorshift needs a non-zero state; mix the seed so seed 0 works too.
    cursor.noise_state = seed_ * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (cursor.noise_state == 0) cursor.noise_state = 1;
}

size_t NoiseSource::mix_into(RouteCursor& cursor, size_t frames, const ChannelMatrix& matrix, double gain,
                             MixTarget& target) {
    float chunk[kChunk];
    uint64_t x = cursor.noise_state;
    for (size_t done = 0; done < frames;) {
        size_t n = std::min(kChunk, frames - done);
        for (size_t i = 0; i < n; ++i) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Top 24 bits -> uniform in [-1, 1).
            double u = static_cast<double>(x >> 40) * (2.0 / 16777216.0) - 1.0;
            chunk[i] = static_cast<float>(amplitude_ * u);
        }
        target.add(chunk, done, n, matrix, gain);
        done += n;
    }
    cursor.noise_state = x;
    return frames;
}

}  // namespace sinkcast
