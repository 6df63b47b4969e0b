// Times sinkcast's Opus encoder alone, the way a sink drives it: one frame
// per wake-up of a thread that sleeps until the next frame is due. Used by
// benchmarks/bench_sink_cost.py through the native module, beside PyAV's
// libopus measured in the same run.
#pragma once

namespace sinkcast {

struct OpusBenchmarkResult {
    double encode_ns_per_frame = 0;  // thread CPU inside encode(), mean
    double wake_ns_per_frame = 0;    // thread CPU of each wake-up around it (0 when gap_ms == 0)
    double bytes_per_frame = 0;
};

// Encodes `frames` 20 ms frames of a 440 Hz stereo tone at `bitrate_bps` and
// `complexity`. With gap_ms > 0 the thread sleeps until each next frame is
// due, gap_ms apart (on an absolute clock, as the sink's clock does), so the
// encoder starts every frame with whatever caches the sleep left it.
OpusBenchmarkResult benchmark_opus_encode(int frames, int bitrate_bps, int complexity, int gap_ms);

}  // namespace sinkcast
