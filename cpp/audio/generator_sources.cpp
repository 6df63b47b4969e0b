#include "audio/generator_sources.h"

#include <cmath>

namespace sinkcast {

namespace {
constexpr size_t kChunk = 256;  // generate in small stack chunks, then mix
constexpr double kTwoPi = 6.283185307179586476925286766559;
}  // namespace

ToneSource::ToneSource(double frequency_hz, double amplitude)
    : Source(1), frequency_hz_(frequency_hz), amplitude_(amplitude) {}

size_t ToneSource::mix_into(RouteCursor& cursor, size_t frames, const ChannelMatrix& matrix, double gain,
                            MixTarget& target) {
    float chunk[kChunk];
    const double step = frequency_hz_ / kEngineRate;
    for (size_t done = 0; done < frames;) {
        size_t n = std::min(kChunk, frames - done);
        for (size_t i = 0; i < n; ++i) {
            chunk[i] = static_cast<float>(amplitude_ * std::sin(kTwoPi * cursor.phase));
            cursor.phase += step;
            if (cursor.phase >= 1.0) cursor.phase -= 1.0;  // keep precision over hours
        }
        target.add(chunk, done, n, matrix, gain);
        done += n;
    }
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
