// Scream input: the UDP stream of the Scream virtual sound card and of
// ScreamRouter. Each datagram is a 5-byte header then interleaved
// little-endian PCM (usually 1152 bytes of it):
//   byte 0: sample rate: bit 7 set = base 44100 Hz, clear = 48000 Hz;
//           bits 0-6 = multiplier (1 = base rate, 2 = twice, ...; 0 is invalid)
//   byte 1: bits per sample: 16, 24 or 32 (signed integers)
//   byte 2: channels (1-8)
//   bytes 3-4: channel mask (WAVEFORMATEXTENSIBLE dwChannelMask, little-endian)
// The format may change at any packet; the source keeps its configured channel
// count (extra wire channels are dropped, missing ones repeat the first ones)
// and resamples whatever rate arrives to 48 kHz.
#pragma once

#include <vector>

#include "net/net_input.h"

namespace sinkcast {

struct ScreamInputConfig {
    NetEndpoint endpoint;      // Scream's default port is 4010 (multicast 239.255.77.77)
    int channels = 2;          // of the source
    int target_delay_ms = 60;  // prebuffer before a route plays
    int buffer_ms = 500;
};

class ScreamInput final : public NetInput {
public:
    ScreamInput(const ScreamInputConfig& config, bool realtime);
    ~ScreamInput() override;

    const char* kind() const override { return "scream"; }
    NetInputStats net_stats() const override;

protected:
    void on_datagram(const uint8_t* data, size_t size, Clock::time_point now) override;

private:
    uint8_t last_header_[5] = {0, 0, 0, 0, 0};
    bool have_header_ = false;
    std::vector<float> wire_;
    std::vector<float> mapped_;
    bool have_arrival_ = false;
    Clock::time_point last_arrival_{};
    uint64_t last_frames_ = 0;
    int last_rate_ = 0;
    double jitter_s_ = 0.0;
};

}  // namespace sinkcast
