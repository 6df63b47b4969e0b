#include "net/rtp_receiver.h"

#include <opus.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace sinkcast {

namespace {

constexpr size_t kMaxPayload = 16384;      // bigger RTP audio payloads are refused as malformed
constexpr int64_t kMaxSeqJump = 3000;      // further ahead, a packet is on probation (see the header)
constexpr int64_t kMaxMisorder = 100;      // further behind, likewise (2 s of 20 ms packets: not merely late)
constexpr size_t kMaxQueued = 256;         // a gap is given up at once when this many wait behind it
constexpr int kMaxOpusFrame = 5760;        // 120 ms at 48 kHz
constexpr int kSsrcSwitchPackets = 3;      // consecutive packets that make a new SSRC the stream
constexpr auto kSsrcIdle = std::chrono::milliseconds(250);  // or silence of the current one for this long
constexpr auto kProbationWait = std::chrono::milliseconds(250);  // a packet on probation is dropped after this

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t be32(const uint8_t* p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

size_t prebuffer_for(const RtpInputConfig& c, bool realtime) {
    return realtime ? static_cast<size_t>(c.target_delay_ms) * kEngineRate / 1000 : 0;
}

int default_payload_type(const RtpInputConfig& c) {
    if (c.payload_type >= 0) return c.payload_type;
    if (c.encoding == RtpEncoding::L16 && c.sample_rate == 44100 && c.channels == 2) return 10;
    if (c.encoding == RtpEncoding::L16 && c.sample_rate == 44100 && c.channels == 1) return 11;
    return 96;
}

const RtpInputConfig& validated(const RtpInputConfig& c) {
    if (c.encoding == RtpEncoding::Opus) {
        if (c.sample_rate != 48000)
            throw std::invalid_argument("opus over RTP has a 48000 Hz clock; sample_rate must be 48000, got " +
                                        std::to_string(c.sample_rate));
        if (c.channels != 1 && c.channels != 2)
            throw std::invalid_argument("opus channels must be 1 or 2, got " + std::to_string(c.channels));
    } else {
        if (c.sample_rate < 8000 || c.sample_rate > 192000)
            throw std::invalid_argument("sample_rate must be 8000 to 192000 Hz, got " + std::to_string(c.sample_rate));
        if (c.channels < 1 || c.channels > kMaxSourceChannels)
            throw std::invalid_argument("channels must be 1 to 8, got " + std::to_string(c.channels));
    }
    int pt = default_payload_type(c);
    if (pt == 10 && !(c.encoding == RtpEncoding::L16 && c.sample_rate == 44100 && c.channels == 2))
        throw std::invalid_argument("payload type 10 is L16 at 44100 Hz, 2 channels (RFC 3551)");
    if (pt == 11 && !(c.encoding == RtpEncoding::L16 && c.sample_rate == 44100 && c.channels == 1))
        throw std::invalid_argument("payload type 11 is L16 at 44100 Hz, 1 channel (RFC 3551)");
    if (pt != 10 && pt != 11 && (pt < 96 || pt > 127))
        throw std::invalid_argument("payload_type must be 10, 11 or a dynamic type 96-127, got " + std::to_string(pt));
    if (c.buffer_ms < 20 || c.buffer_ms > 60000)
        throw std::invalid_argument("buffer_ms must be 20 to 60000, got " + std::to_string(c.buffer_ms));
    if (c.target_delay_ms < 0 || c.target_delay_ms > 5000 || c.target_delay_ms >= c.buffer_ms)
        throw std::invalid_argument("jitter_ms (the jitter buffer target) must be 0 to 5000 and less than buffer_ms (" +
                                    std::to_string(c.buffer_ms) + "), got " + std::to_string(c.target_delay_ms));
    return c;
}

}  // namespace

const char* rtp_encoding_name(RtpEncoding e) {
    switch (e) {
        case RtpEncoding::L16: return "L16";
        case RtpEncoding::L24: return "L24";
        case RtpEncoding::Opus: return "opus";
    }
    return "?";
}

RtpInput::RtpInput(const RtpInputConfig& config, bool realtime)
    : NetInput(validated(config).channels, config.endpoint,
               static_cast<size_t>(config.buffer_ms) * kEngineRate / 1000, prebuffer_for(config, realtime)),
      config_(config),
      payload_type_(default_payload_type(config)),
      clock_rate_(config.encoding == RtpEncoding::Opus ? 48000 : config.sample_rate),
      bytes_per_frame_(static_cast<size_t>(config.channels) * (config.encoding == RtpEncoding::L24 ? 3 : 2)),
      reorder_wait_(std::chrono::microseconds(std::max(3000, config.target_delay_ms * 1000 / 6))),
      realtime_(realtime),
      target_frames_(static_cast<int64_t>(config.target_delay_ms) * clock_rate_ / 1000) {
    target_delay_ms_ = config.target_delay_ms;
    wire_rate_.store(clock_rate_);
    wire_channels_.store(config.channels);
    played_.fill(-1);
    if (config.encoding == RtpEncoding::Opus) {
        int err = OPUS_OK;
        opus_ = opus_decoder_create(48000, config.channels, &err);
        if (err != OPUS_OK || !opus_)
            throw std::runtime_error(std::string("opus_decoder_create failed: ") + opus_strerror(err));
    }
    decoded_.resize(static_cast<size_t>(kMaxOpusFrame) * static_cast<size_t>(config.channels));
}

RtpInput::~RtpInput() {
    stop();  // the thread uses the decoder: join it before freeing
    if (opus_) opus_decoder_destroy(opus_);
}

NetInputStats RtpInput::net_stats() const {
    NetInputStats s = NetInput::net_stats();
    s.protocol = "rtp";
    s.encoding = rtp_encoding_name(config_.encoding);
    return s;
}

void RtpInput::reset_stream(uint32_t ssrc) {
    have_stream_ = true;
    ssrc_ = ssrc;
    candidates_.clear();
    drop_probation();  // a stray of the stream being left (the new one's packet is taken off first)
    queue_.clear();
    queued_packets_.store(0, std::memory_order_relaxed);
    have_ts_ = false;
    have_transit_ = false;
    jitter_ = 0.0;
    played_.fill(-1);
    if (opus_) opus_decoder_ctl(opus_, OPUS_RESET_STATE);
}

void RtpInput::update_jitter(uint32_t timestamp, Clock::time_point now) {
    // RFC 3550 6.4.1: J += (|D| - J) / 16, D the change in transit time, in timestamp units.
    double arrival = std::chrono::duration<double>(now - epoch_).count() * clock_rate_;
    double transit = arrival - static_cast<double>(timestamp);
    if (have_transit_) {
        double d = transit - last_transit_;
        // Timestamps wrap at 2^32: fold the difference back.
        if (d > 2147483648.0) d -= 4294967296.0;
        if (d < -2147483648.0) d += 4294967296.0;
        jitter_ += (std::fabs(d) - jitter_) / 16.0;
        jitter_ms_.store(jitter_ * 1000.0 / clock_rate_, std::memory_order_relaxed);
    }
    last_transit_ = transit;
    have_transit_ = true;
}

void RtpInput::on_datagram(const uint8_t* data, size_t size, Clock::time_point now) {
    auto reject = [&] { malformed_.fetch_add(1, std::memory_order_relaxed); };
    if (size < 12 || (data[0] >> 6) != 2) return reject();
    const bool padding = data[0] & 0x20;
    const bool extension = data[0] & 0x10;
    const size_t csrc = data[0] & 0x0f;
    const int pt = data[1] & 0x7f;
    const uint16_t seq = be16(data + 2);
    const uint32_t ts = be32(data + 4);
    const uint32_t ssrc = be32(data + 8);
    size_t offset = 12 + 4 * csrc;
    if (offset > size) return reject();
    if (extension) {
        if (offset + 4 > size) return reject();
        offset += 4 + 4 * static_cast<size_t>(be16(data + offset + 2));
        if (offset > size) return reject();
    }
    size_t end = size;
    if (padding) {
        size_t pad = data[size - 1];
        if (pad == 0 || offset + pad > size) return reject();
        end -= pad;
    }
    if (pt != payload_type_) return reject();
    const size_t length = end - offset;
    if (length == 0 || length > kMaxPayload) return reject();
    if (config_.encoding != RtpEncoding::Opus && length % bytes_per_frame_ != 0) return reject();

    Parsed packet;
    packet.seq = seq;
    packet.timestamp = ts;
    packet.ssrc = ssrc;
    packet.size = size;
    packet.payload.assign(data + offset, data + end);

    // One sender at a time: a new SSRC takes over after a few packets in a row (which
    // are then played), or at once when the current one has gone quiet.
    if (!have_stream_) {
        reset_stream(ssrc);
        accept(packet, now, true);
        return;
    }
    if (ssrc != ssrc_) {
        if (!candidates_.empty() && candidates_.front().ssrc != ssrc) drop_candidates();
        bool idle = now - last_arrival_ >= kSsrcIdle;
        if (!idle && candidates_.size() + 1 < static_cast<size_t>(kSsrcSwitchPackets)) {
            candidates_.push_back(std::move(packet));
            return;
        }
        std::vector<Parsed> held;
        held.swap(candidates_);
        held.push_back(std::move(packet));
        reset_stream(ssrc);
        ssrc_changes_.fetch_add(1, std::memory_order_relaxed);
        bool first = true;
        for (auto& p : held) {
            accept(p, now, first);
            first = false;
        }
        return;
    }
    drop_candidates();
    accept(packet, now, false);
}

void RtpInput::drop_probation() {
    if (!on_probation_) return;
    on_probation_ = false;
    packets_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(probation_.size, std::memory_order_relaxed);
    if (played_[static_cast<size_t>(probation_ext_ & 511)] == probation_ext_)
        duplicates_.fetch_add(1, std::memory_order_relaxed);
    else
        late_.fetch_add(1, std::memory_order_relaxed);
}

void RtpInput::drop_candidates() {
    foreign_.fetch_add(candidates_.size(), std::memory_order_relaxed);
    candidates_.clear();
}

void RtpInput::accept(Parsed& packet, Clock::time_point now, bool first) {
    last_arrival_ = now;
    const uint16_t seq = packet.seq;
    int64_t ext;
    if (first) {
        ext = (int64_t{1} << 32) + seq;
        expected_seq_ = highest_seq_ = ext;
    } else {
        // Sequence numbers wrap at 2^16: extend relative to the highest seen.
        ext = highest_seq_ + static_cast<int16_t>(static_cast<uint16_t>(seq - static_cast<uint16_t>(highest_seq_)));
        const int64_t ahead = ext - expected_seq_;
        if (ahead > kMaxSeqJump || ahead < -kMaxMisorder) {
            // A sender that restarted or jumped, or one stray packet (delayed, replayed):
            // start over only once its neighbour in sequence comes next, in either order.
            const bool follows = seq == static_cast<uint16_t>(probation_.seq + 1);
            if (on_probation_ && (follows || seq == static_cast<uint16_t>(probation_.seq - 1))) {
                resyncs_.fetch_add(1, std::memory_order_relaxed);
                Parsed held = std::move(probation_);
                on_probation_ = false;
                reset_stream(packet.ssrc);
                Parsed& first_packet = follows ? held : packet;
                Parsed& second_packet = follows ? packet : held;
                accept(first_packet, now, true);
                accept(second_packet, now, false);
                return;
            }
            drop_probation();
            probation_ = std::move(packet);
            probation_ext_ = ext;
            probation_arrival_ = now;
            on_probation_ = true;
            return;
        }
        drop_probation();  // the stream goes on where it was: that packet was a stray
    }
    packets_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(packet.size, std::memory_order_relaxed);
    update_jitter(packet.timestamp, now);

    if (ext < expected_seq_) {
        if (played_[static_cast<size_t>(ext & 511)] == ext)
            duplicates_.fetch_add(1, std::memory_order_relaxed);
        else
            late_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    if (queue_.count(ext)) {
        duplicates_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    if (ext < highest_seq_) reordered_.fetch_add(1, std::memory_order_relaxed);
    highest_seq_ = std::max(highest_seq_, ext);
    Packet& p = queue_[ext];
    p.timestamp = packet.timestamp;
    p.arrival = now;
    p.payload = std::move(packet.payload);
    drain(now);
}

RtpInput::Clock::time_point RtpInput::next_deadline() const {
    Clock::time_point next = Clock::time_point::max();
    if (!queue_.empty() && queue_.begin()->first != expected_seq_)
        next = queue_.begin()->second.arrival + reorder_wait_;
    if (on_probation_) next = std::min(next, probation_arrival_ + kProbationWait);
    return next;
}

void RtpInput::on_timer(Clock::time_point now) {
    // A packet on probation that nothing followed (the stream ended, or it was a lone stray).
    if (on_probation_ && now - probation_arrival_ >= kProbationWait) drop_probation();
    drain(now);
}

void RtpInput::drain(Clock::time_point now) {
    while (!queue_.empty()) {
        auto head = queue_.begin();
        if (head->first != expected_seq_) {
            // A gap: wait for the missing packets until the first one behind it has waited long enough.
            if (now - head->second.arrival < reorder_wait_ && queue_.size() < kMaxQueued) break;
            conceal(head->first - expected_seq_, &head->second);
            expected_seq_ = head->first;
        }
        play(head->first, head->second);
        queue_.erase(head);
        ++expected_seq_;
    }
    queued_packets_.store(queue_.size(), std::memory_order_relaxed);
}

size_t RtpInput::payload_frames(const Packet& p) const {
    if (config_.encoding != RtpEncoding::Opus) return p.payload.size() / bytes_per_frame_;
    int n = opus_packet_get_nb_samples(p.payload.data(), static_cast<opus_int32>(p.payload.size()), 48000);
    return n > 0 ? static_cast<size_t>(n) : 0;
}

void RtpInput::conceal(int64_t missing_packets, const Packet* next) {
    lost_.fetch_add(static_cast<uint64_t>(missing_packets), std::memory_order_relaxed);
    if (!have_ts_) return;  // nothing played yet: nothing to continue
    int64_t frames = 0;
    if (next) {
        int32_t gap = static_cast<int32_t>(next->timestamp - expected_ts_);
        if (gap > 0 && gap <= 2 * clock_rate_) frames = gap;
    }
    if (frames == 0) {
        if (!next) return;
        frames = static_cast<int64_t>(payload_frames(*next)) * missing_packets;
        frames = std::min<int64_t>(frames, 2 * clock_rate_);
    }
    const int64_t fill = fill_limit(frames);
    expected_ts_ += static_cast<uint32_t>(frames);  // the timeline moves on by the whole gap
    concealed_frames_.fetch_add(static_cast<uint64_t>(fill), std::memory_order_relaxed);
    skipped_frames_.fetch_add(static_cast<uint64_t>(frames - fill), std::memory_order_relaxed);
    if (!opus_) {
        emit_silence(static_cast<size_t>(fill), clock_rate_);
        return;
    }
    int64_t fec_frames = 0;
    if (config_.fec && next && carries_fec(*next)) {
        fec_frames = static_cast<int64_t>(payload_frames(*next));
        if (fec_frames <= 0 || fec_frames > fill || fec_frames % 120 != 0) fec_frames = 0;
    }
    int64_t plc = fill - fec_frames;
    while (plc > 0) {
        int n = static_cast<int>(std::min<int64_t>(plc, kMaxOpusFrame));
        n -= n % 120;  // libopus decodes whole 2.5 ms units
        if (n == 0) {
            emit_silence(static_cast<size_t>(plc), 48000);
            break;
        }
        int got = opus_decode_float(opus_, nullptr, 0, decoded_.data(), n, 0);
        if (got <= 0) {
            emit_silence(static_cast<size_t>(n), 48000);
        } else {
            emit(decoded_.data(), static_cast<size_t>(got), 48000);
        }
        plc -= n;
    }
    if (fec_frames > 0) {
        int got = opus_decode_float(opus_, next->payload.data(), static_cast<opus_int32>(next->payload.size()),
                                    decoded_.data(), static_cast<int>(fec_frames), 1);
        if (got > 0) {
            emit(decoded_.data(), static_cast<size_t>(got), 48000);
            fec_recovered_.fetch_add(1, std::memory_order_relaxed);
        } else {
            emit_silence(static_cast<size_t>(fec_frames), 48000);
        }
    }
}

int64_t RtpInput::fill_limit(int64_t gap_frames) const {
    // While a route plays, the gap lies ahead of the clock: fill it all. Once every
    // route has run dry (and waits for jitter_ms again), the clock has played the
    // gap as silence already: fill only what brings the queue up to the target.
    if (!realtime_) return gap_frames;
    const FrameRing::Level level = ring_level();
    if (level.playing) return gap_frames;
    const int64_t queued = static_cast<int64_t>(level.most_buffered) * clock_rate_ / kEngineRate;
    return std::clamp<int64_t>(target_frames_ - queued, 0, gap_frames);
}

bool RtpInput::carries_fec(const Packet& p) const {
    const auto* data = p.payload.data();
    const auto size = static_cast<opus_int32>(p.payload.size());
#ifdef SINKCAST_HAVE_OPUS_PACKET_HAS_LBRR
    return opus_packet_has_lbrr(data, size) == 1;
#else
    // libopus < 1.5 cannot tell: only SILK and hybrid packets (TOC configs 0-15) may carry it.
    return size > 0 && (data[0] >> 3) < 16;
#endif
}

void RtpInput::play(int64_t seq, const Packet& p) {
    played_[static_cast<size_t>(seq & 511)] = seq;
    if (have_ts_) {
        // Timestamps say where this audio belongs: a jump forward is silence the sender
        // left out (or audio lost); a jump too large either way restarts the timeline.
        int32_t gap = static_cast<int32_t>(p.timestamp - expected_ts_);
        if (gap > 0 && gap <= 2 * clock_rate_) {
            conceal(0, &p);  // the same gap, from the same timestamps: nothing counted lost
        } else if (gap != 0 && (gap > 2 * clock_rate_ || gap < -2 * clock_rate_)) {
            resyncs_.fetch_add(1, std::memory_order_relaxed);
        }
    }
    const size_t ch = static_cast<size_t>(channels());
    const uint8_t* d = p.payload.data();
    size_t frames = 0;
    switch (config_.encoding) {
        case RtpEncoding::L16: {
            frames = p.payload.size() / bytes_per_frame_;
            converted_.resize(frames * ch);
            for (size_t i = 0; i < frames * ch; ++i)
                converted_[i] = static_cast<float>(static_cast<int16_t>(be16(d + 2 * i))) * (1.0f / 32768.0f);
            emit(converted_.data(), frames, clock_rate_);
            break;
        }
        case RtpEncoding::L24: {
            frames = p.payload.size() / bytes_per_frame_;
            converted_.resize(frames * ch);
            for (size_t i = 0; i < frames * ch; ++i) {
                const uint8_t* s = d + 3 * i;
                int32_t v = static_cast<int32_t>((uint32_t(s[0]) << 24) | (uint32_t(s[1]) << 16) | (uint32_t(s[2]) << 8)) >> 8;
                converted_[i] = static_cast<float>(v) * (1.0f / 8388608.0f);
            }
            emit(converted_.data(), frames, clock_rate_);
            break;
        }
        case RtpEncoding::Opus: {
            int got = opus_decode_float(opus_, d, static_cast<opus_int32>(p.payload.size()), decoded_.data(),
                                        kMaxOpusFrame, 0);
            if (got < 0) {
                decode_errors_.fetch_add(1, std::memory_order_relaxed);
                size_t n = payload_frames(p);
                if (n > 0) emit_silence(n, 48000);
                frames = n;
            } else {
                frames = static_cast<size_t>(got);
                emit(decoded_.data(), frames, 48000);
            }
            break;
        }
    }
    expected_ts_ = p.timestamp + static_cast<uint32_t>(frames);
    have_ts_ = true;
}

}  // namespace sinkcast
