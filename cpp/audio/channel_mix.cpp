#include "audio/channel_mix.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include <stdexcept>
#include <string>

namespace sinkcast {

namespace {
constexpr double kMinus3dB = 0.70710678118654752;

// Stereo downmix rows for each source layout: {left coefficients, right coefficients}.
void stereo_rows(int n, double* left, double* right) {
    const double k = kMinus3dB;
    switch (n) {
        case 1: left[0] = 1; right[0] = 1; break;
        case 2: left[0] = 1; right[1] = 1; break;
        case 3: left[0] = 1; right[1] = 1; left[2] = k; right[2] = k; break;
        case 4: left[0] = 1; right[1] = 1; left[2] = k; right[3] = k; break;
        case 5: left[0] = 1; right[1] = 1; left[2] = k; right[2] = k; left[3] = k; right[4] = k; break;
        case 6:  // LFE (3) dropped
            left[0] = 1; right[1] = 1; left[2] = k; right[2] = k; left[4] = k; right[5] = k; break;
        case 7:  // L R C LFE Cs Ls Rs
            left[0] = 1; right[1] = 1; left[2] = k; right[2] = k; left[4] = k; right[4] = k;
            left[5] = k; right[6] = k; break;
        case 8:  // L R C LFE Lb Rb Ls Rs
            left[0] = 1; right[1] = 1; left[2] = k; right[2] = k; left[4] = k; right[5] = k;
            left[6] = k; right[7] = k; break;
        default: break;
    }
}
}  // namespace

ChannelMatrix standard_channel_matrix(int source_channels, int sink_channels) {
    if (source_channels < 1 || source_channels > kMaxSourceChannels)
        throw std::invalid_argument("source channels must be 1 to 8, got " + std::to_string(source_channels));
    if (sink_channels < 1 || sink_channels > kMaxSinkChannels)
        throw std::invalid_argument("sink channels must be 1 or 2, got " + std::to_string(sink_channels));
    ChannelMatrix m;
    m.source_channels = source_channels;
    m.sink_channels = sink_channels;
    double left[kMaxSourceChannels] = {}, right[kMaxSourceChannels] = {};
    stereo_rows(source_channels, left, right);
    for (int i = 0; i < source_channels; ++i) {
        if (sink_channels == 2) {
            m.coefficient[0][i] = left[i];
            m.coefficient[1][i] = right[i];
        } else if (source_channels == 1) {
            m.coefficient[0][i] = 1.0;
        } else {
            m.coefficient[0][i] = 0.5 * (left[i] + right[i]);
        }
    }
    return m;
}

namespace {

SINKCAST_HOT_LOOP void add_scaled(const float* in, size_t n, double g, double* acc) {
    for (size_t i = 0; i < n; ++i) acc[i] += g * static_cast<double>(in[i]);
}

SINKCAST_HOT_LOOP void add_mono_to_stereo(const float* in, size_t frames, double gl, double gr, double* acc) {
    for (size_t f = 0; f < frames; ++f) {
        const double s = in[f];
        acc[2 * f] += gl * s;
        acc[2 * f + 1] += gr * s;
    }
}

}  // namespace

SINKCAST_HOT_LOOP double finish_mix(const double* acc, size_t samples, double volume, float* out) {
    // Written as two simple loops so both vectorize: clamp-and-convert, then the
    // peak as an integer max over |sample| bit patterns (for non-negative floats
    // the bit order is the numeric order, and integer max reductions vectorize
    // where floating-point ones do not).
    for (size_t i = 0; i < samples; ++i) {
        double v = volume * acc[i];
        v = v < -1.0 ? -1.0 : v;
        v = v > 1.0 ? 1.0 : v;
        out[i] = static_cast<float>(v);
    }
    uint32_t peak_bits = 0;
    for (size_t i = 0; i < samples; ++i) {
        uint32_t bits = std::bit_cast<uint32_t>(out[i]) & 0x7fffffffu;
        peak_bits = peak_bits > bits ? peak_bits : bits;
    }
    const float peak = std::bit_cast<float>(peak_bits);
    if (peak < 1.0f) return peak;
    // Something reached full scale: find the true pre-clip peak (rare, so scalar is fine).
    double true_peak = 0.0;
    for (size_t i = 0; i < samples; ++i) true_peak = std::max(true_peak, std::fabs(volume * acc[i]));
    return true_peak;
}

void accumulate(const float* in, size_t frames, const ChannelMatrix& matrix, double gain, double* acc) {
    const int in_ch = matrix.source_channels;
    const int out_ch = matrix.sink_channels;
    // The common layouts get loops the compiler vectorizes.
    if (in_ch == out_ch && (in_ch == 1 || (matrix.coefficient[0][0] == 1.0 && matrix.coefficient[0][1] == 0.0 &&
                                           matrix.coefficient[1][0] == 0.0 && matrix.coefficient[1][1] == 1.0))) {
        add_scaled(in, frames * static_cast<size_t>(in_ch), gain * (in_ch == 1 ? matrix.coefficient[0][0] : 1.0),
                   acc);
        return;
    }
    if (in_ch == 1 && out_ch == 2) {
        add_mono_to_stereo(in, frames, gain * matrix.coefficient[0][0], gain * matrix.coefficient[1][0], acc);
        return;
    }
    double c[kMaxSinkChannels][kMaxSourceChannels];
    for (int o = 0; o < out_ch; ++o)
        for (int i = 0; i < in_ch; ++i) c[o][i] = gain * matrix.coefficient[o][i];
    for (size_t f = 0; f < frames; ++f) {
        const float* frame = in + f * static_cast<size_t>(in_ch);
        for (int o = 0; o < out_ch; ++o) {
            double sum = 0.0;
            for (int i = 0; i < in_ch; ++i) sum += c[o][i] * static_cast<double>(frame[i]);
            acc[f * static_cast<size_t>(out_ch) + static_cast<size_t>(o)] += sum;
        }
    }
}

}  // namespace sinkcast
