// Sources that synthesize audio on the mixer thread: a sine tone and white
// noise. Each route has its own phase / generator state, so they never run dry.
#pragma once

#include "audio/source.h"

namespace sinkcast {

class ToneSource final : public Source {
public:
    ToneSource(double frequency_hz, double amplitude);
    const char* kind() const override { return "tone"; }
    double frequency_hz() const { return frequency_hz_; }
    double amplitude() const { return amplitude_; }
    void attach(RouteCursor& cursor) override {
        cursor.phase = 0.0;
        cursor.tone_samples = 0;
    }
    size_t mix_into(RouteCursor& cursor, size_t frames, const ChannelMatrix& matrix, double gain,
                    MixTarget& target) override;

private:
    double frequency_hz_, amplitude_;
    double step_cos_, step_sin_;  // the rotation of one sample
};

class NoiseSource final : public Source {
public:
    NoiseSource(double amplitude, uint64_t seed);
    const char* kind() const override { return "noise"; }
    double amplitude() const { return amplitude_; }
    void attach(RouteCursor& cursor) override;
    size_t mix_into(RouteCursor& cursor, size_t frames, const ChannelMatrix& matrix, double gain,
                    MixTarget& target) override;

private:
    double amplitude_;
    uint64_t seed_;
};

}  // namespace sinkcast
