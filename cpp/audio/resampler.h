// Sample-rate conversion of one source's stream to the engine rate, with
// libsoxr. Streaming: the filter history is kept between calls.
//
// Tuned for live audio fed in small blocks (resampler.cpp says how): output
// comes within about one 10 ms push, where libsoxr's defaults held up to
// 150 ms at 8 kHz and released it in bursts.
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
        fed_ = true;
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

    // Ends the stream for now: emits what the filter still holds (the input
    // as if silence followed) and starts afresh, so the next process() begins
    // a new stream. Does nothing if nothing was fed since the last drain.
    // Returns the number of output frames.
    template <typename Emit>
    size_t drain(Emit&& emit) {
        if (!fed_) return 0;
        size_t produced = 0;
        for (;;) {
            size_t used = 0, made = 0;
            run(nullptr, 0, &used, &made);  // null input: flush
            if (made == 0) break;
            emit(output_.data(), made);
            produced += made;
        }
        restart();
        return produced;
    }

private:
    void run(const float* in, size_t in_frames, size_t* used, size_t* made);
    void restart();  // after a flush libsoxr takes no more input until cleared

    bool fed_ = false;  // input since the last drain
    int channels_;
    soxr* handle_ = nullptr;
    std::vector<float> output_;
    size_t output_frames_;
};

}  // namespace sinkcast
