#include "codec/opus_benchmark.h"

#include <time.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "codec/opus_encoder.h"

namespace sinkcast {

namespace {

int64_t thread_cpu_ns() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace

OpusBenchmarkResult benchmark_opus_encode(int frames, int bitrate_bps, int complexity, int gap_ms) {
    OpusSettings settings;
    settings.channels = 2;
    settings.bitrate_bps = bitrate_bps;
    settings.complexity = complexity;
    settings.frame_ms = 20;
    OpusEncoder encoder(settings);
    const int n = encoder.frame_samples();
    std::vector<float> pcm(static_cast<size_t>(n) * 2);
    std::vector<uint8_t> packet(OpusEncoder::kMaxPacketBytes);
    double phase = 0;
    const double step = 2 * M_PI * 440.0 / OpusEncoder::kSampleRate;

    int64_t encode_ns = 0, bytes = 0;
    auto due = std::chrono::steady_clock::now();
    const int64_t start = thread_cpu_ns();
    for (int f = 0; f < frames; ++f) {
        for (int i = 0; i < n; ++i) {
            const float s = static_cast<float>(0.3 * std::sin(phase));
            phase = std::fmod(phase + step, 2 * M_PI);
            pcm[2 * static_cast<size_t>(i)] = pcm[2 * static_cast<size_t>(i) + 1] = s;
        }
        const int64_t before = thread_cpu_ns();
        bytes += static_cast<int64_t>(encoder.encode(pcm.data(), packet.data(), packet.size()));
        encode_ns += thread_cpu_ns() - before;
        if (gap_ms > 0) {
            due += std::chrono::milliseconds(gap_ms);
            std::this_thread::sleep_until(due);
        }
    }
    const int64_t total_ns = thread_cpu_ns() - start;

    OpusBenchmarkResult r;
    r.encode_ns_per_frame = static_cast<double>(encode_ns) / frames;
    r.bytes_per_frame = static_cast<double>(bytes) / frames;
    // The rest of the loop, less the tone it computed (timed apart, below).
    if (gap_ms > 0) {
        const int64_t tone_start = thread_cpu_ns();
        for (int f = 0; f < frames; ++f)
            for (int i = 0; i < n; ++i) {
                const float s = static_cast<float>(0.3 * std::sin(phase));
                phase = std::fmod(phase + step, 2 * M_PI);
                pcm[2 * static_cast<size_t>(i)] = pcm[2 * static_cast<size_t>(i) + 1] = s;
            }
        const int64_t tone_ns = thread_cpu_ns() - tone_start;
        r.wake_ns_per_frame = static_cast<double>(total_ns - encode_ns - tone_ns) / frames;
    }
    return r;
}

}  // namespace sinkcast
