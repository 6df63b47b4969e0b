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

// True when every sample is a finite number. Integer formats are always finite.
bool all_samples_finite(const void* input, SampleFormat format, size_t samples);

// Copies float samples (the input may be unaligned) and returns the largest
// |sample|. Finding it rides along with the copy, which costs less than a
// second pass over the copied samples.
float copy_samples(const void* input, size_t samples, float* output);

}  // namespace sinkcast
