#include "audio/sample_format.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "audio/hot_loop.h"

namespace sinkcast {

const char* sample_format_name(SampleFormat format) {
    switch (format) {
        case SampleFormat::Int16: return "int16";
        case SampleFormat::Int32: return "int32";
        case SampleFormat::Float32: return "float32";
    }
    return "unknown";
}

size_t sample_format_bytes(SampleFormat format) {
    switch (format) {
        case SampleFormat::Int16: return 2;
        case SampleFormat::Int32: return 4;
        case SampleFormat::Float32: return 4;
    }
    return 0;
}

SINKCAST_HOT_LOOP float convert_to_float(const void* input, SampleFormat format, size_t samples, float* output) {
    switch (format) {
        case SampleFormat::Int16: {
            const auto* in = static_cast<const int16_t*>(input);
            int32_t top = 0;  // the largest |x| in integers, which vectorizes (a float max would need finite math)
            for (size_t i = 0; i < samples; ++i) {
                int32_t x = in[i];
                output[i] = static_cast<float>(x) * (1.0f / 32768.0f);
                int32_t a = x < 0 ? -x : x;
                top = top > a ? top : a;
            }
            return static_cast<float>(top) * (1.0f / 32768.0f);
        }
        case SampleFormat::Int32: {
            const auto* in = static_cast<const int32_t*>(input);
            uint32_t top = 0;
            for (size_t i = 0; i < samples; ++i) {
                int32_t x = in[i];
                // Through double: float has only 24 bits of mantissa, the scale itself is exact.
                output[i] = static_cast<float>(static_cast<double>(x) * (1.0 / 2147483648.0));
                uint32_t a = x < 0 ? 0u - static_cast<uint32_t>(x) : static_cast<uint32_t>(x);
                top = top > a ? top : a;
            }
            // Rounded as the samples were: rounding is monotonic, so no sample exceeds it.
            return static_cast<float>(static_cast<double>(top) * (1.0 / 2147483648.0));
        }
        case SampleFormat::Float32:
            return copy_samples(input, samples, output);
    }
    // Not reached: every format is handled above. An infinite bound would only
    // ever send the mixer down its double path.
    return std::numeric_limits<float>::infinity();
}

namespace {

// The largest magnitude among float samples, as bits: without the sign bit a
// float's bits order as its magnitude does, with Inf and then NaN above every
// number. An integer max reduction vectorizes (a float max would need finite
// math); the input may be unaligned, hence memcpy. With an output, the
// samples are copied there in the same pass.
[[gnu::always_inline]] inline uint32_t largest_magnitude_bits(const void* input, size_t samples, float* output) {
    const auto* bytes = static_cast<const unsigned char*>(input);
    uint32_t top = 0;
    for (size_t i = 0; i < samples; ++i) {
        uint32_t bits;
        std::memcpy(&bits, bytes + i * sizeof(float), sizeof bits);
        if (output) std::memcpy(output + i, &bits, sizeof bits);  // hoisted out of the loop by the compiler
        bits &= 0x7fffffffu;
        top = top > bits ? top : bits;
    }
    return top;
}

constexpr uint32_t kInfinityBits = 0x7f800000u;

}  // namespace

SINKCAST_HOT_LOOP bool all_samples_finite(const void* input, SampleFormat format, size_t samples) {
    if (format != SampleFormat::Float32) return true;
    return largest_magnitude_bits(input, samples, nullptr) < kInfinityBits;
}

SINKCAST_HOT_LOOP float copy_samples(const void* input, size_t samples, float* output) {
    uint32_t top = largest_magnitude_bits(input, samples, output);
    float peak;
    std::memcpy(&peak, &top, sizeof peak);
    return peak;
}

}  // namespace sinkcast
