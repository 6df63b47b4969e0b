// A cheap receive-only WebRTC listener (libdatachannel), shipped as a test and
// benchmark utility: it offers recvonly Opus audio, counts what arrives, and
// records the arrival time and size of each RTP packet. It does not decode.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace rtc {
class PeerConnection;
}

namespace sinkcast {

struct ProbePacket {
    int64_t arrival_ns;  // steady clock (CLOCK_MONOTONIC on Linux, as Python's time.monotonic_ns)
    uint32_t size;       // RTP packet bytes after SRTP decryption
};

class ReceiveProbe {
public:
    explicit ReceiveProbe(const std::string& bind_address);
    ~ReceiveProbe();
    ReceiveProbe(const ReceiveProbe&) = delete;
    ReceiveProbe& operator=(const ReceiveProbe&) = delete;

    // The offer with every local candidate in it (waits for ICE gathering, at most timeout_s).
    std::string create_offer(double timeout_s);
    void accept_answer(const std::string& sdp);

    uint64_t packets() const;
    uint64_t bytes() const;
    bool connected() const;
    // Packets recorded since the last call (recording keeps the newest 100000).
    std::vector<ProbePacket> take_packets();
    void close();

private:
    // The peer connection, or a runtime_error once close() has run.
    std::shared_ptr<rtc::PeerConnection> peer() const;

    struct State;
    std::shared_ptr<State> state_;
    uint64_t fork_generation_;  // engine/fork_guard.h: a copy in a forked child is left alone
};

}  // namespace sinkcast
