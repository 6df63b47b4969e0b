#include "audio/mixer_benchmark.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "audio/aligned_vector.h"
#include "audio/push_source.h"
#include "audio/sink_audio_mixer.h"

namespace sinkcast {

namespace {
using clock_type = std::chrono::steady_clock;
constexpr size_t kFrames = 480;

double ns_since(clock_type::time_point start) {
    return std::chrono::duration<double, std::nano>(clock_type::now() - start).count();
}
}  // namespace

MixerBenchmarkResult benchmark_mixer(int sources, int channels, int periods, int repeats) {
    const size_t samples = kFrames * static_cast<size_t>(channels);
    // Every buffer on a cache line, as the rings are, so both sides get the same
    // alignment whatever malloc would have given.
    std::vector<AlignedVector<float>> input(static_cast<size_t>(sources), AlignedVector<float>(samples));
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-0.5f, 0.5f);
    for (auto& block : input)
        for (float& s : block) s = dist(rng);

    SinkAudioMixer mixer(channels, kFrames);
    std::vector<std::shared_ptr<PushSource>> pushers;
    for (int i = 0; i < sources; ++i) {
        auto source = std::make_shared<PushSource>(kEngineRate, channels, kFrames * 4, 0);
        mixer.add_route("s" + std::to_string(i), source, 0.5);
        pushers.push_back(std::move(source));
    }
    AlignedVector<float> out(samples);
    AlignedVector<float> copy_target(samples * static_cast<size_t>(sources));

    MixerBenchmarkResult result;
    result.bytes_per_period = samples * sizeof(float) * static_cast<size_t>(sources);
    result.mixer_ns_per_period = 1e300;
    result.memcpy_ns_per_period = 1e300;
    for (int r = 0; r < repeats; ++r) {
        double mix_total = 0, copy_total = 0;
        for (int p = 0; p < periods; ++p) {
            // Refill every source (not timed) so each mix reads fresh ring data.
            for (int i = 0; i < sources; ++i)
                pushers[static_cast<size_t>(i)]->push(input[static_cast<size_t>(i)].data(), SampleFormat::Float32,
                                                      kFrames);
            auto t0 = clock_type::now();
            mixer.mix(out.data(), kFrames);
            mix_total += ns_since(t0);

            auto t1 = clock_type::now();
            for (int i = 0; i < sources; ++i)
                std::memcpy(copy_target.data() + samples * static_cast<size_t>(i),
                            input[static_cast<size_t>(i)].data(), samples * sizeof(float));
            copy_total += ns_since(t1);
            // Keep the copy observable so it is not optimized away.
            if (copy_target[static_cast<size_t>(p) % copy_target.size()] == 12345.0f) out[0] += 1.0f;
        }
        result.mixer_ns_per_period = std::min(result.mixer_ns_per_period, mix_total / periods);
        result.memcpy_ns_per_period = std::min(result.memcpy_ns_per_period, copy_total / periods);
    }
    return result;
}

}  // namespace sinkcast
