// RTP audio input (RFC 3550): L16 (RFC 3551 payload types 10/11 or dynamic),
// L24 (RFC 3190) and Opus (RFC 7587), behind a jitter buffer ordered by
// extended sequence number.
//
// Jitter buffer: packets are held in sequence order and played (decoded into
// the inner PushSource) as soon as they are next in line. A gap in the
// sequence is waited for up to a sixth of the target delay (at least 3 ms),
// measured from the arrival of the first packet behind it; then the missing
// packets are counted lost and concealed (Opus: libopus PLC or in-band FEC;
// PCM: silence of the missing duration, from the RTP timestamps). The
// playout buffer proper is the PushSource's prebuffer: a route starts
// playing once target_delay_ms of audio is queued, as for push().
//
// In real time, a gap found after the routes have run dry is filled only up
// to the target: the clock has already played the rest as underrun, and
// filling it all would add it to the latency for good (a 1 s outage used to
// leave 500 ms). A packet far from the stream's sequence (more than 3000
// ahead or 100 behind) is believed only once its neighbour in sequence comes
// next, in either order (RFC 3550, A.1): a sender that restarted is followed
// at its second packet, and one stray old packet is dropped as late (after
// 250 ms at most, if nothing follows it).
#pragma once

#include <array>
#include <map>
#include <string>
#include <vector>

#include "net/net_input.h"

struct OpusDecoder;

namespace sinkcast {

enum class RtpEncoding { L16, L24, Opus };

struct RtpInputConfig {
    NetEndpoint endpoint;
    RtpEncoding encoding = RtpEncoding::L16;
    int sample_rate = 48000;   // the RTP clock / PCM rate (Opus: always 48000 on the wire)
    int channels = 2;          // on the wire, and of the source
    int payload_type = -1;     // -1: 10/11 for L16 at 44.1 kHz stereo/mono, else 96
    int target_delay_ms = 60;  // jitter buffer target
    int buffer_ms = 500;       // ring capacity (older audio dropped beyond it)
    bool fec = false;          // opus: use in-band FEC of the next packet for a lost one
};

const char* rtp_encoding_name(RtpEncoding e);

class RtpInput final : public NetInput {
public:
    // prebuffer: 48 kHz frames queued before a route plays (0 on the manual clock).
    RtpInput(const RtpInputConfig& config, bool realtime);
    ~RtpInput() override;

    const char* kind() const override { return "rtp"; }
    NetInputStats net_stats() const override;
    int payload_type() const { return payload_type_; }

protected:
    void on_datagram(const uint8_t* data, size_t size, Clock::time_point now) override;
    Clock::time_point next_deadline() const override;
    void on_timer(Clock::time_point now) override;

private:
    struct Packet {
        uint32_t timestamp = 0;
        Clock::time_point arrival{};
        std::vector<uint8_t> payload;
    };

    struct Parsed {
        uint16_t seq = 0;
        uint32_t timestamp = 0;
        uint32_t ssrc = 0;
        size_t size = 0;  // of the datagram
        std::vector<uint8_t> payload;
    };
    void accept(Parsed& packet, Clock::time_point now, bool first);
    void reset_stream(uint32_t ssrc);
    void drop_candidates();
    void drop_probation();  // the packet on probation was a stray: counted late (or duplicate)
    void drain(Clock::time_point now);
    void play(int64_t seq, const Packet& p);
    void conceal(int64_t missing_packets, const Packet* next);
    int64_t fill_limit(int64_t gap_frames) const;
    bool carries_fec(const Packet& p) const;
    size_t payload_frames(const Packet& p) const;
    void update_jitter(uint32_t timestamp, Clock::time_point now);

    RtpInputConfig config_;
    int payload_type_;
    int clock_rate_;
    size_t bytes_per_frame_;  // PCM only
    Clock::duration reorder_wait_;
    bool realtime_;
    int64_t target_frames_;  // the jitter target, in frames at the wire rate

    // Receive thread only.
    bool have_stream_ = false;
    uint32_t ssrc_ = 0;
    uint32_t candidate_ssrc_ = 0;
    std::vector<Parsed> candidates_;  // packets of a new SSRC, replayed when it takes over
    bool on_probation_ = false;
    Parsed probation_;                // a packet far from the stream's sequence, until the next one follows it
    int64_t probation_ext_ = 0;       // its extended sequence number in the current stream
    Clock::time_point probation_arrival_{};
    Clock::time_point last_arrival_{};
    int64_t expected_seq_ = 0;   // extended sequence number of the next packet to play
    int64_t highest_seq_ = 0;    // highest extended sequence number received
    bool have_ts_ = false;
    uint32_t expected_ts_ = 0;   // RTP timestamp right after the last played audio
    std::map<int64_t, Packet> queue_;
    std::array<int64_t, 512> played_{};  // played_[seq % 512] == seq: played (for duplicates)
    bool have_transit_ = false;
    double last_transit_ = 0.0;
    double jitter_ = 0.0;        // in timestamp units
    Clock::time_point epoch_ = Clock::now();

    OpusDecoder* opus_ = nullptr;
    std::vector<float> decoded_;
    std::vector<float> converted_;
};

}  // namespace sinkcast
