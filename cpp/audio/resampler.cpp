#include "audio/resampler.h"

#include <soxr.h>

#include <stdexcept>
#include <string>

namespace sinkcast {

Resampler::Resampler(double input_rate, double output_rate, int channels)
    : channels_(channels), output_frames_(4096) {
    output_.resize(output_frames_ * static_cast<size_t>(channels));
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
    soxr_runtime_spec_t runtime = soxr_runtime_spec(1);  // no worker threads
    soxr_error_t error = nullptr;
    handle_ = soxr_create(input_rate, output_rate, static_cast<unsigned>(channels), &error, &io, &quality,
                          &runtime);
    if (error || !handle_)
        throw std::runtime_error(std::string("libsoxr could not create a resampler: ") +
                                 (error ? error : "unknown error"));
}

Resampler::~Resampler() {
    if (handle_) soxr_delete(handle_);
}

void Resampler::run(const float* in, size_t in_frames, size_t* used, size_t* made) {
    soxr_error_t error = soxr_process(handle_, in, in_frames, used, output_.data(), output_frames_, made);
    if (error) throw std::runtime_error(std::string("libsoxr failed: ") + error);
}

}  // namespace sinkcast
