#include "opus_encoder.h"

#include <opus.h>

#include <climits>
#include <stdexcept>
#include <string>

namespace sinkcast {
namespace {

constexpr int kMinBitrate = 6000;
constexpr int kMaxBitrate = 510000;

void check_bitrate(int bitrate_bps) {
  if (bitrate_bps < kMinBitrate || bitrate_bps > kMaxBitrate) {
    throw std::invalid_argument("Opus bitrate_bps must be between " + std::to_string(kMinBitrate) +
                                " and " + std::to_string(kMaxBitrate) + ", got " +
                                std::to_string(bitrate_bps));
  }
}

void check_settings(const OpusSettings& s) {
  if (s.channels != 1 && s.channels != 2) {
    throw std::invalid_argument("Opus channels must be 1 or 2, got " + std::to_string(s.channels));
  }
  check_bitrate(s.bitrate_bps);
  if (s.complexity < 0 || s.complexity > 10) {
    throw std::invalid_argument("Opus complexity must be between 0 and 10, got " +
                                std::to_string(s.complexity));
  }
  if (s.frame_ms != 10 && s.frame_ms != 20) {
    throw std::invalid_argument("Opus frame_ms must be 10 or 20, got " + std::to_string(s.frame_ms));
  }
}

void ctl_or_throw(int rc, const char* what) {
  if (rc != OPUS_OK) {
    throw std::runtime_error(std::string("opus_encoder_ctl(") + what + ") failed: " +
                             opus_strerror(rc));
  }
}

}  // namespace

void OpusEncoder::Deleter::operator()(::OpusEncoder* enc) const noexcept {
  if (enc != nullptr) opus_encoder_destroy(enc);
}

OpusEncoder::OpusEncoder(const OpusSettings& settings) : settings_(settings) {
  check_settings(settings_);
  frame_samples_ = kSampleRate / 1000 * settings_.frame_ms;

  const int application =
      settings_.low_delay ? OPUS_APPLICATION_RESTRICTED_LOWDELAY : OPUS_APPLICATION_AUDIO;
  int err = OPUS_OK;
  enc_.reset(opus_encoder_create(kSampleRate, settings_.channels, application, &err));
  if (err != OPUS_OK || !enc_) {
    enc_.reset();
    throw std::runtime_error(std::string("opus_encoder_create failed: ") + opus_strerror(err));
  }
  ctl_or_throw(opus_encoder_ctl(enc_.get(), OPUS_SET_BITRATE(settings_.bitrate_bps)), "bitrate");
  ctl_or_throw(opus_encoder_ctl(enc_.get(), OPUS_SET_COMPLEXITY(settings_.complexity)),
               "complexity");
  // Unconstrained VBR (the default, made explicit); Opus picks SILK/CELT/hybrid itself.
  ctl_or_throw(opus_encoder_ctl(enc_.get(), OPUS_SET_VBR(1)), "vbr");
}

OpusEncoder::~OpusEncoder() = default;
OpusEncoder::OpusEncoder(OpusEncoder&&) noexcept = default;
OpusEncoder& OpusEncoder::operator=(OpusEncoder&&) noexcept = default;

int OpusEncoder::lookahead_samples() const {
  opus_int32 lookahead = 0;
  if (opus_encoder_ctl(enc_.get(), OPUS_GET_LOOKAHEAD(&lookahead)) != OPUS_OK) return 0;
  return static_cast<int>(lookahead);
}

size_t OpusEncoder::encode(const float* pcm, uint8_t* out, size_t capacity) {
  if (pcm == nullptr || out == nullptr) {
    throw std::invalid_argument("OpusEncoder::encode: null pcm or output buffer");
  }
  const opus_int32 max_bytes =
      capacity > static_cast<size_t>(INT_MAX) ? INT_MAX : static_cast<opus_int32>(capacity);
  const opus_int32 n = opus_encode_float(enc_.get(), pcm, frame_samples_, out, max_bytes);
  if (n < 0) {
    if (n == OPUS_BUFFER_TOO_SMALL) {
      throw std::length_error("OpusEncoder::encode: output capacity " + std::to_string(capacity) +
                              " bytes is too small");
    }
    throw std::runtime_error(std::string("opus_encode_float failed: ") + opus_strerror(n));
  }
  return static_cast<size_t>(n);
}

void OpusEncoder::set_bitrate(int bitrate_bps) {
  check_bitrate(bitrate_bps);
  ctl_or_throw(opus_encoder_ctl(enc_.get(), OPUS_SET_BITRATE(bitrate_bps)), "bitrate");
  settings_.bitrate_bps = bitrate_bps;
}

void OpusEncoder::reset() { opus_encoder_ctl(enc_.get(), OPUS_RESET_STATE); }

}  // namespace sinkcast
