#include "net/scream_receiver.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace sinkcast {

namespace {

constexpr size_t kHeader = 5;
constexpr size_t kMaxScreamPayload = 16384;

const ScreamInputConfig& validated(const ScreamInputConfig& c) {
    if (c.channels < 1 || c.channels > kMaxSourceChannels)
        throw std::invalid_argument("channels must be 1 to 8, got " + std::to_string(c.channels));
    if (c.buffer_ms < 20 || c.buffer_ms > 60000)
        throw std::invalid_argument("buffer_ms must be 20 to 60000, got " + std::to_string(c.buffer_ms));
    if (c.target_delay_ms < 0 || c.target_delay_ms > 5000 || c.target_delay_ms >= c.buffer_ms)
        throw std::invalid_argument("jitter_ms must be 0 to 5000 and less than buffer_ms (" +
                                    std::to_string(c.buffer_ms) + "), got " + std::to_string(c.target_delay_ms));
    return c;
}

}  // namespace

ScreamInput::ScreamInput(const ScreamInputConfig& config, bool realtime)
    : NetInput(validated(config).channels, config.endpoint,
               static_cast<size_t>(config.buffer_ms) * kEngineRate / 1000,
               realtime ? static_cast<size_t>(config.target_delay_ms) * kEngineRate / 1000 : 0) {
    target_delay_ms_ = config.target_delay_ms;
}

ScreamInput::~ScreamInput() { stop(); }

NetInputStats ScreamInput::net_stats() const {
    NetInputStats s = NetInput::net_stats();
    s.protocol = "scream";
    s.encoding = "pcm";
    return s;
}

void ScreamInput::on_datagram(const uint8_t* data, size_t size, Clock::time_point now) {
    auto reject = [&] { malformed_.fetch_add(1, std::memory_order_relaxed); };
    if (size <= kHeader || size - kHeader > kMaxScreamPayload) return reject();
    const int multiplier = data[0] & 0x7f;
    const int rate = ((data[0] & 0x80) ? 44100 : 48000) * multiplier;
    const int bits = data[1];
    const int wire_ch = data[2];
    if (multiplier == 0 || rate > 192000) return reject();
    if (bits != 16 && bits != 24 && bits != 32) return reject();
    if (wire_ch < 1 || wire_ch > 8) return reject();
    const size_t sample_bytes = static_cast<size_t>(bits / 8);
    const size_t frame_bytes = sample_bytes * static_cast<size_t>(wire_ch);
    const size_t payload = size - kHeader;
    if (payload % frame_bytes != 0) return reject();

    if (!have_header_ || std::memcmp(last_header_, data, kHeader) != 0) {
        if (have_header_) format_changes_.fetch_add(1, std::memory_order_relaxed);
        std::memcpy(last_header_, data, kHeader);
        have_header_ = true;
        have_arrival_ = false;
        wire_rate_.store(rate, std::memory_order_relaxed);
        wire_channels_.store(wire_ch, std::memory_order_relaxed);
    }
    packets_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(size, std::memory_order_relaxed);

    // Scream has no timestamps: jitter is the RFC 3550 estimator over the gap
    // between arrivals versus the audio duration of the previous packet.
    const size_t frames = payload / frame_bytes;
    if (have_arrival_) {
        double d = std::chrono::duration<double>(now - last_arrival_).count() -
                   static_cast<double>(last_frames_) / last_rate_;
        jitter_s_ += (std::fabs(d) - jitter_s_) / 16.0;
        jitter_ms_.store(jitter_s_ * 1000.0, std::memory_order_relaxed);
    }
    have_arrival_ = true;
    last_arrival_ = now;
    last_frames_ = frames;
    last_rate_ = rate;

    const uint8_t* pcm = data + kHeader;
    const size_t samples = frames * static_cast<size_t>(wire_ch);
    wire_.resize(samples);
    for (size_t i = 0; i < samples; ++i) {
        const uint8_t* s = pcm + i * sample_bytes;
        switch (bits) {
            case 16: wire_[i] = static_cast<float>(static_cast<int16_t>(s[0] | (s[1] << 8))) * (1.0f / 32768.0f); break;
            case 24: {
                int32_t v = static_cast<int32_t>((uint32_t(s[0]) << 8) | (uint32_t(s[1]) << 16) | (uint32_t(s[2]) << 24)) >> 8;
                wire_[i] = static_cast<float>(v) * (1.0f / 8388608.0f);
                break;
            }
            default: {
                int32_t v = static_cast<int32_t>(uint32_t(s[0]) | (uint32_t(s[1]) << 8) | (uint32_t(s[2]) << 16) |
                                                 (uint32_t(s[3]) << 24));
                wire_[i] = static_cast<float>(static_cast<double>(v) * (1.0 / 2147483648.0));
                break;
            }
        }
    }
    const int out_ch = channels();
    if (out_ch == wire_ch) {
        emit(wire_.data(), frames, rate);
        return;
    }
    mapped_.resize(frames * static_cast<size_t>(out_ch));
    for (size_t f = 0; f < frames; ++f)
        for (int c = 0; c < out_ch; ++c)
            mapped_[f * out_ch + c] = wire_[f * wire_ch + (c % wire_ch)];
    emit(mapped_.data(), frames, rate);
}

}  // namespace sinkcast
