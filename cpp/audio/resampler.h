// Sample-rate conversion of one source's stream to the engine rate, with
// libsoxr. Streaming: the filter history is kept between calls.
#pragma once

#include <cstddef>
#include <vector>

struct soxr;

namespace sinkcast {

class Resampler {
public:
    Resampler(double input_rate, double output_rate, int channels);
    ~Resampler();
    Resampler(const Resampler&) = delete;
    Resampler& operator=(const Resampler&) = delete;

    // Converts `frames` interleaved float32 input frames and calls
    // `emit(const float* frames, size_t count)` for each run of output.
    // Returns the number of output frames. One caller at a time.
    template <typename Emit>
    size_t process(const float* input, size_t frames, Emit&& emit) {
        size_t produced = 0;
        size_t consumed = 0;
        if (frames == 0) return 0;
        for (;;) {
            size_t used = 0, made = 0;
            // Never pass a null input: for libsoxr that means end of stream (flush).
            run(input + consumed * static_cast<size_t>(channels_), frames - consumed, &used, &made);
            consumed += used;
            if (made > 0) {
                emit(output_.data(), made);
                produced += made;
            }
            if (consumed >= frames && made == 0) break;
        }
        return produced;
    }

private:
    void run(const float* in, size_t in_frames, size_t* used, size_t* made);

    int channels_;
    soxr* handle_ = nullptr;
    std::vector<float> output_;
    size_t output_frames_;
};

}  // namespace sinkcast
