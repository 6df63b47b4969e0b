#include "audio/channel_mix.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "audio/mix_kernels.h"

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
    m.identity = source_channels == sink_channels;  // 1 -> 1 and 2 -> 2 pass through unchanged
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

// The loops below are kept separate and simple so the compiler vectorizes each.
// (An identity map is a group of one for mix_kernels.h.)

SINKCAST_HOT_LOOP void set_mono_to_stereo(const float* in, size_t frames, double gl, double gr, double* acc) {
    for (size_t f = 0; f < frames; ++f) {
        const double s = in[f];
        acc[2 * f] = gl * s;
        acc[2 * f + 1] = gr * s;
    }
}

SINKCAST_HOT_LOOP void add_mono_to_stereo(const float* in, size_t frames, double gl, double gr, double* acc) {
    for (size_t f = 0; f < frames; ++f) {
        const double s = in[f];
        acc[2 * f] += gl * s;
        acc[2 * f + 1] += gr * s;
    }
}

// Any matrix, frame by frame (the layouts above cover the common cases).
void mix_general(const float* in, size_t frames, const ChannelMatrix& matrix, double gain, bool overwrite,
                 double* acc) {
    const int in_ch = matrix.source_channels;
    const int out_ch = matrix.sink_channels;
    double c[kMaxSinkChannels][kMaxSourceChannels];
    for (int o = 0; o < out_ch; ++o)
        for (int i = 0; i < in_ch; ++i) c[o][i] = gain * matrix.coefficient[o][i];
    for (size_t f = 0; f < frames; ++f) {
        const float* frame = in + f * static_cast<size_t>(in_ch);
        double* dst = acc + f * static_cast<size_t>(out_ch);
        for (int o = 0; o < out_ch; ++o) {
            double sum = 0.0;
            for (int i = 0; i < in_ch; ++i) sum += c[o][i] * static_cast<double>(frame[i]);
            dst[o] = overwrite ? sum : dst[o] + sum;
        }
    }
}

}  // namespace

void MixTarget::add(const float* in, size_t offset, size_t frames, const ChannelMatrix& matrix, double gain) {
    const int in_ch = matrix.source_channels;
    double* acc = acc_ + offset * sink_channels_;
    if (matrix.identity) {
        SourceGroup one;
        one.in[0] = in;
        one.gain[0] = gain;
        one.count = 1;
        accumulate_group(one, frames * static_cast<size_t>(in_ch), overwrite_, acc, GroupSum::in_double);
    } else if (in_ch == 1 && matrix.sink_channels == 2) {
        const double gl = gain * matrix.coefficient[0][0], gr = gain * matrix.coefficient[1][0];
        overwrite_ ? set_mono_to_stereo(in, frames, gl, gr, acc) : add_mono_to_stereo(in, frames, gl, gr, acc);
    } else {
        mix_general(in, frames, matrix, gain, overwrite_, acc);
    }
}

}  // namespace sinkcast
