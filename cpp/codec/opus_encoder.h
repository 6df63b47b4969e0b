// Opus encoder wrapper: one per sink, encodes every frame once for all listeners.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

// libopus' encoder state (C, global namespace). Declared here so that this
// header does not pull in <opus.h>.
struct OpusEncoder;

namespace sinkcast {

struct OpusSettings {
  int channels = 2;            // 1 or 2
  int bitrate_bps = 128000;    // 6000 .. 510000
  int complexity = 9;          // 0 .. 10
  int frame_ms = 20;           // 10 or 20
  bool low_delay = false;      // OPUS_APPLICATION_RESTRICTED_LOWDELAY instead of OPUS_APPLICATION_AUDIO
};

// Not thread-safe: owned and driven by one sink's mixer thread.
// encode() does not allocate (the libopus state is allocated once, here).
class OpusEncoder {
 public:
  static constexpr int kSampleRate = 48000;
  // Enough for any single Opus frame (the RFC 6716 maximum is 1275 bytes);
  // the size libopus' documentation recommends for an output buffer.
  static constexpr size_t kMaxPacketBytes = 4000;

  // Throws std::invalid_argument with a message naming the bad field.
  explicit OpusEncoder(const OpusSettings& settings);
  ~OpusEncoder();
  OpusEncoder(const OpusEncoder&) = delete;
  OpusEncoder& operator=(const OpusEncoder&) = delete;
  OpusEncoder(OpusEncoder&&) noexcept;
  OpusEncoder& operator=(OpusEncoder&&) noexcept;

  int frame_samples() const { return frame_samples_; }  // per channel: 480 or 960
  int channels() const { return settings_.channels; }
  const OpusSettings& settings() const { return settings_; }
  // Encoder lookahead in samples per channel at 48 kHz (algorithmic delay).
  int lookahead_samples() const;

  // Encodes exactly frame_samples()*channels() interleaved float32 samples
  // (nominally in [-1, 1]). Returns the number of bytes written into out
  // (<= capacity). Throws std::invalid_argument for null pointers,
  // std::length_error when capacity is too small for the packet, and
  // std::runtime_error for any other libopus failure (none are expected).
  size_t encode(const float* pcm, uint8_t* out, size_t capacity);

  // Changes the target bitrate on the fly (same range as OpusSettings).
  void set_bitrate(int bitrate_bps);
  // Forgets the signal history (e.g. after a discontinuity).
  void reset();

 private:
  struct Deleter {
    void operator()(::OpusEncoder* enc) const noexcept;
  };
  OpusSettings settings_;
  int frame_samples_ = 0;
  std::unique_ptr<::OpusEncoder, Deleter> enc_;
};

}  // namespace sinkcast
