// A source of audio at the engine rate (48 kHz), read by any number of
// routes. Each route keeps its own RouteCursor, so one source can feed many
// sinks without the sinks stealing frames from each other.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

#include "audio/channel_mix.h"
#include "audio/frame_ring.h"

namespace sinkcast {

constexpr int kEngineRate = 48000;

struct RouteCursor {
    ReadCursor ring;          // pushed sources: position in the source's ring
    double phase = 0.0;       // tone: phase in cycles, [0, 1)
    uint64_t tone_samples = 0;          // tone: samples generated (for re-anchoring the oscillator)
    double tone_cos = 1.0, tone_sin = 0.0;  // tone: the oscillator's state, cos/sin(2 pi phase)
    uint64_t noise_state = 0; // noise: generator state
};

struct SourceCounters {
    uint64_t frames_in = 0;       // frames received (at the source's own rate)
    uint64_t underruns = 0;       // 10 ms periods in which a route got less than it needed, summed over routes
    uint64_t overruns = 0;        // times a full ring overwrote unread audio
    uint64_t dropped_frames = 0;  // frames lost that way (48 kHz frames)
};

// Frames a source lends to the mixer in place: `runs` stay valid, and no
// writer can touch them, while `lock` is held.
struct SourceLoan {
    std::unique_lock<std::mutex> lock;
    RingRuns runs;
};

class Source {
public:
    explicit Source(int channels) : channels_(channels), serial_(next_serial()) {}
    virtual ~Source() = default;
    Source(const Source&) = delete;
    Source& operator=(const Source&) = delete;

    // Channels of the 48 kHz stream the mixer reads.
    int channels() const { return channels_; }
    // Unique in the process: tells a source from one added later under the same id.
    uint64_t serial() const { return serial_; }
    virtual const char* kind() const = 0;
    virtual int sample_rate() const { return kEngineRate; }

    virtual void attach(RouteCursor& cursor) = 0;
    virtual void detach(RouteCursor&) {}

    // Hands up to `frames` frames of audio, in order from frame 0 of the period,
    // to `target.add()` with this route's matrix and gain. Returns the frames
    // that had audio; the rest is silence and the caller counts an underrun.
    virtual size_t mix_into(RouteCursor& cursor, size_t frames, const ChannelMatrix& matrix, double gain,
                            MixTarget& target) = 0;

    // Sources that keep their 48 kHz frames in a ring lend them in place, so the
    // mixer can read several of them in one pass over its accumulator. lend()
    // consumes up to `frames` frames for this route as mix_into() would. With
    // wait=false it only tries the lock and returns false when it is busy: the
    // mixer never waits for one source while it holds another, so two sinks that
    // share sources can never wait for each other.
    virtual bool lends_frames() const { return false; }
    virtual bool lend(RouteCursor& /*cursor*/, size_t /*frames*/, bool /*wait*/, SourceLoan& /*loan*/) { return false; }

    // Frames queued for this route (0 for generators).
    virtual size_t buffered_frames(const RouteCursor&) const { return 0; }

    virtual SourceCounters counters() const {
        SourceCounters c;
        c.underruns = underruns_.load(std::memory_order_relaxed);
        return c;
    }
    void count_underrun() { underruns_.fetch_add(1, std::memory_order_relaxed); }

protected:
    std::atomic<uint64_t> underruns_{0};

private:
    int channels_;
    uint64_t serial_;

    static uint64_t next_serial() {
        static std::atomic<uint64_t> counter{0};
        return ++counter;
    }
};

}  // namespace sinkcast
