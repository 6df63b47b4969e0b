// A source fed from the network: one UDP socket and one receive thread per
// input. Whatever the wire carries is decoded to float32 by the subclass,
// resampled to 48 kHz here and written into a PushSource, so mixing,
// prebuffering, underruns and overruns behave exactly as for push().
//
// Threads: the receive thread is started by start() and joined by stop()
// (idempotent, also called by the destructor). It never takes an engine lock;
// it only writes into the inner PushSource's ring. stop() wakes it through an
// eventfd, so it returns promptly.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "audio/push_source.h"
#include "audio/resampler.h"
#include "audio/source.h"
#include "engine/caught_errors.h"

namespace sinkcast {

// Counters of one network input (all since it was added).
struct NetInputStats {
    std::string protocol;        // "rtp" or "scream"
    std::string bind_address;
    int port = 0;                // the bound port (the ephemeral one when 0 was asked for)
    std::string encoding;        // rtp: "L16" / "L24" / "opus"; scream: "pcm"
    uint64_t packets = 0;        // valid packets received
    uint64_t bytes = 0;          // their UDP payload bytes
    uint64_t lost = 0;           // packets never received in time (concealed)
    uint64_t late = 0;           // packets that arrived after their turn had passed (dropped)
    uint64_t reordered = 0;      // packets that arrived before an earlier-numbered one, still in time
    uint64_t duplicates = 0;     // packets received twice (dropped)
    uint64_t malformed = 0;      // datagrams rejected: truncated, bad version/header, too big, wrong PT
    uint64_t errors = 0;         // packets or timers the receive thread failed to handle (CaughtErrors)
    std::string last_error;
    uint64_t ssrc_changes = 0;   // rtp: a new sender (stream reset)
    uint64_t foreign = 0;        // rtp: packets of another SSRC that did not take over (dropped)
    uint64_t resyncs = 0;        // rtp: sequence/timestamp jumps that reset the buffer
    uint64_t concealed_frames = 0;  // frames (at the wire rate) of PLC or silence filled in for gaps
    uint64_t skipped_frames = 0;    // frames of gaps not filled: the clock had played them as underrun
    uint64_t fec_recovered = 0;  // opus: packets rebuilt from in-band FEC
    uint64_t decode_errors = 0;  // opus: packets libopus refused
    uint64_t format_changes = 0; // scream: the wire format changed
    double jitter_ms = 0.0;      // RFC 3550 interarrival jitter, in ms
    size_t queued_packets = 0;   // rtp: packets held in the reorder buffer now
    int wire_sample_rate = 0;    // the rate on the wire (scream: last seen)
    int wire_channels = 0;
    int target_delay_ms = 0;
};

// The socket of a network input could not be opened (bind, multicast join):
// Python's sinkcast.NetworkInputError, an OSError.
class NetworkInputError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct NetEndpoint {
    std::string bind_address = "127.0.0.1";
    int port = 0;  // 0: an ephemeral port (see NetInput::port())
    // A multicast bind_address is joined on the interface with this IPv4
    // address ("": the one the routing table picks for the group).
    std::string multicast_interface;
};

class NetInput : public Source {
public:
    // Binds the socket (throws std::invalid_argument / std::runtime_error with the
    // reason). capacity/prebuffer are 48 kHz frames, as for PushSource.
    NetInput(int channels, const NetEndpoint& endpoint, size_t capacity_frames, size_t prebuffer_frames);
    ~NetInput() override;

    int port() const { return port_; }
    void start();
    void stop();

    void attach(RouteCursor& cursor) override { inner_.attach(cursor); }
    void detach(RouteCursor& cursor) override { inner_.detach(cursor); }
    size_t mix_into(RouteCursor& cursor, size_t frames, const ChannelMatrix& matrix, double gain,
                    MixTarget& target) override {
        return inner_.mix_into(cursor, frames, matrix, gain, target);
    }
    bool lends_frames() const override { return true; }
    bool lend(RouteCursor& cursor, size_t frames, bool wait, SourceLoan& loan) override {
        return inner_.lend(cursor, frames, wait, loan);
    }
    size_t buffered_frames(const RouteCursor& cursor) const override { return inner_.buffered_frames(cursor); }
    SourceCounters counters() const override;
    int sample_rate() const override { return wire_rate_.load(std::memory_order_relaxed); }

    virtual NetInputStats net_stats() const;

protected:
    static constexpr size_t kMaxDatagram = 65536;
    using Clock = std::chrono::steady_clock;

    // Receive thread only.
    virtual void on_datagram(const uint8_t* data, size_t size, Clock::time_point now) = 0;
    // Receive thread only: the next time on_timer() must run (time_point::max(): none).
    virtual Clock::time_point next_deadline() const { return Clock::time_point::max(); }
    virtual void on_timer(Clock::time_point) {}

    // Receive thread only: interleaved float frames (`channels()` channels) at `rate` Hz.
    void emit(const float* frames, size_t count, int rate);
    void emit_silence(size_t count, int rate);
    // Whether a route is playing, and the most 48 kHz frames any route has queued.
    FrameRing::Level ring_level() const { return inner_.level(); }

    std::atomic<uint64_t> packets_{0}, bytes_{0}, lost_{0}, late_{0}, reordered_{0}, duplicates_{0},
        malformed_{0}, ssrc_changes_{0}, foreign_{0}, resyncs_{0}, concealed_frames_{0}, skipped_frames_{0},
        fec_recovered_{0},
        decode_errors_{0}, format_changes_{0};
    CaughtErrors errors_;  // receive thread
    std::atomic<double> jitter_ms_{0.0};
    std::atomic<size_t> queued_packets_{0};
    std::atomic<int> wire_rate_{0}, wire_channels_{0};
    std::string bind_address_;
    int target_delay_ms_ = 0;

private:
    void run();

    PushSource inner_;
    int fd_ = -1;
    int wake_fd_ = -1;
    int port_ = 0;
    std::thread thread_;
    std::mutex lifecycle_mutex_;
    std::atomic<bool> stopping_{false};
    std::unique_ptr<Resampler> resampler_;
    int resampler_rate_ = 0;
    std::vector<float> silence_;
    std::atomic<uint64_t> frames_in_{0};
};

}  // namespace sinkcast
