// Times SinkAudioMixer alone (no Python, no engine locks) against memcpy of
// the same bytes, both measured here in the same run. Used by
// benchmarks/bench_mixer.py through the native module.
#pragma once

#include <cstddef>

namespace sinkcast {

struct MixerBenchmarkResult {
    double mixer_ns_per_period = 0;
    double memcpy_ns_per_period = 0;
    size_t bytes_per_period = 0;  // source bytes one period reads
};

// `sources` push sources of `channels` channels at 48 kHz into one sink of
// `channels`; each timed period is 480 frames (10 ms). The best of `repeats`
// runs of `periods` periods each is reported, which filters scheduler noise.
MixerBenchmarkResult benchmark_mixer(int sources, int channels, int periods, int repeats);

}  // namespace sinkcast
