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
    // One second of the tone, made before the clock starts: 440 whole cycles,
    // so its 50 frames repeat without a seam.
    constexpr int kFramesPerSecond = 50;
    std::vector<float> tone(static_cast<size_t>(n) * 2 * kFramesPerSecond);
    for (size_t i = 0; i < tone.size() / 2; ++i)
        tone[2 * i] = tone[2 * i + 1] =
            static_cast<float>(0.3 * std::sin(2 * M_PI * 440.0 * static_cast<double>(i) / OpusEncoder::kSampleRate));
    std::vector<uint8_t> packet(OpusEncoder::kMaxPacketBytes);

    int64_t encode_ns = 0, bytes = 0;
    auto due = std::chrono::steady_clock::now();
    const int64_t start = thread_cpu_ns();
    for (int f = 0; f < frames; ++f) {
        const float* pcm = tone.data() + static_cast<size_t>(f % kFramesPerSecond) * static_cast<size_t>(n) * 2;
        const int64_t before = thread_cpu_ns();
        bytes += static_cast<int64_t>(encoder.encode(pcm, packet.data(), packet.size()));
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
    if (gap_ms > 0) r.wake_ns_per_frame = static_cast<double>(total_ns - encode_ns) / frames;  // the rest of the loop
    return r;
}

}  // namespace sinkcast
