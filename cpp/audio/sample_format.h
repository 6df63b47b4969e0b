// Sample formats accepted from callers, and their conversion to the
// engine's internal float32.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sinkcast {

enum class SampleFormat { Int16, Int32, Float32 };

const char* sample_format_name(SampleFormat format);
size_t sample_format_bytes(SampleFormat format);

// int16 -> x / 32768, int32 -> x / 2^31, float32 as is (DESIGN.md). Returns
// the largest |output sample| (the mixer uses it to bound rounding errors).
float convert_to_float(const void* input, SampleFormat format, size_t samples, float* output);

// Float samples beyond this are refused by push(): no audio is that loud
// (full scale is 1.0), and the resampler's float arithmetic turns samples
// near float's limit into Inf and NaN.
constexpr float kMaxFloatSample = 1e6f;

// True when every sample is a number within +-kMaxFloatSample. Integer
// formats always are.
bool all_samples_in_range(const void* input, SampleFormat format, size_t samples);

// Copies float samples (the input may be unaligned) and returns the largest
// |sample|. Finding it rides along with the copy, which costs less than a
// second pass over the copied samples.
float copy_samples(const void* input, size_t samples, float* output);

}  // namespace sinkcast
