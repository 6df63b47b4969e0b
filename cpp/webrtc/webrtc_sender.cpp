#include "webrtc_sender.h"

#include <rtc/rtc.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>
#include <utility>

#include "ice_socket_check.h"

namespace sinkcast {

// ---- libdatachannel global setup ---------------------------------------------

namespace {

const char* level_name(rtc::LogLevel level) {
  switch (level) {
    case rtc::LogLevel::Fatal: return "fatal";
    case rtc::LogLevel::Error: return "error";
    case rtc::LogLevel::Warning: return "warning";
    case rtc::LogLevel::Info: return "info";
    case rtc::LogLevel::Debug: return "debug";
    case rtc::LogLevel::Verbose: return "verbose";
    default: return "log";
  }
}

rtc::LogLevel level_from_env() {
  const char* env = std::getenv("SINKCAST_LIBDATACHANNEL_LOG");
  // Not warning by default: libjuice warns at every failed send, which an IPv4
  // bind address meets at each IPv6 candidate of an ordinary browser offer.
  if (env == nullptr || *env == '\0') return rtc::LogLevel::Error;
  std::string v(env);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  if (v == "none" || v == "off" || v == "0") return rtc::LogLevel::None;
  if (v == "fatal") return rtc::LogLevel::Fatal;
  if (v == "error") return rtc::LogLevel::Error;
  if (v == "warning" || v == "warn") return rtc::LogLevel::Warning;
  if (v == "info") return rtc::LogLevel::Info;
  if (v == "debug") return rtc::LogLevel::Debug;
  if (v == "verbose") return rtc::LogLevel::Verbose;
  // A typo must not pass for a choice: say so once (this runs once per process).
  std::fprintf(stderr,
               "sinkcast: SINKCAST_LIBDATACHANNEL_LOG=%s is not a level (none, fatal, error, warning, info, "
               "debug, verbose); using error\n",
               env);
  return rtc::LogLevel::Error;
}

}  // namespace

void configure_libdatachannel_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    rtc::InitLogger(level_from_env(), [](rtc::LogLevel level, std::string message) {
      std::fprintf(stderr, "[libdatachannel %s] %s\n", level_name(level), message.c_str());
    });
    // The answerer's setRemoteDescription() blocks on certificate generation,
    // which runs on the same global pool as transport processing; with the
    // default size (= cores, min 2) a 2-core host can starve it forever.
    const unsigned cores = std::thread::hardware_concurrency();
    rtc::SetThreadPoolSize(std::max(4u, cores));
  });
}

void validate_ice_server_url(const std::string& url) {
  const std::string expected =
      " (expected stun:host[:port], turn:user:password@host[:port][?transport=udp|tcp] or turns:...)";
  auto refuse = [&](const std::string& why) {
    throw std::invalid_argument("ice_servers: '" + url + "' " + why + expected);
  };
  if (url.find_first_of(" \t\r\n") != std::string::npos) refuse("contains white space");
  std::string scheme = url.substr(0, url.find(':'));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (url.find(':') == std::string::npos || (scheme != "stun" && scheme != "turn" && scheme != "turns"))
    refuse("does not start with stun:, turn: or turns:");
  rtc::IceServer server("", uint16_t(0));
  try {
    server = rtc::IceServer(url);
  } catch (const std::exception& e) {
    refuse(std::string("is not a usable URL: ") + e.what());
  }
  if (server.hostname.empty()) refuse("names no host");
  // The port as written: after the host (past any user:password@ and any
  // [IPv6] literal), before any ?query.
  std::string rest = url.substr(url.find(':') + 1);
  rest = rest.substr(0, rest.find('?'));
  if (auto at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
  if (auto bracket = rest.rfind(']'); bracket != std::string::npos) rest = rest.substr(bracket + 1);
  if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    const std::string port = rest.substr(colon + 1);
    const bool digits = !port.empty() && port.size() <= 5 &&
                        port.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || std::stoul(port) < 1 || std::stoul(port) > 65535)
      refuse("has port '" + port + "', not a number from 1 to 65535");
  }
  if (server.type == rtc::IceServer::Type::Turn && (server.username.empty() || server.password.empty()))
    refuse("is a TURN server without user:password@");
}

// ---- shared state ------------------------------------------------------------

namespace detail {

// Everything libdatachannel callbacks touch. They hold it by shared_ptr, so it
// outlives the WebRTCSender if libdatachannel keeps callbacks around; after
// deactivate() it is inert (alive == false, user callbacks released).
//
// Lock order: WebRTCSender::mutex_ is never held while taking `mutex` (close()
// and failures release it first), so a callback may call close(). `data_mutex`
// is a leaf: nothing is called while holding it.
struct SenderShared {
  std::recursive_mutex mutex;  // held while a user callback runs; recursive so close() may be
                               // called from inside one
  bool alive = true;           // guarded by mutex
  SenderCallbacks callbacks;   // guarded by mutex
  rtc::PeerConnection* pc = nullptr;  // guarded by mutex; valid while alive
  std::string ufrag;                  // guarded by mutex (local ICE ufrag)

  std::mutex data_mutex;
  std::string mid;      // guarded by data_mutex
  int mline_index = 0;  // guarded by data_mutex
  // Data channels the listener opened; see onDataChannel. Guarded by data_mutex.
  std::vector<std::shared_ptr<rtc::DataChannel>> peer_channels;

  std::pair<std::string, int> media() {
    std::lock_guard<std::mutex> lock(data_mutex);
    return {mid, mline_index};
  }

  std::atomic<bool> track_open{false};
  std::atomic<bool> remote_closed_notified{false};
  std::atomic<uint64_t> packets{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<double> rtt_ms{-1.0};
  uint32_t ssrc = 0;  // constant after construction

  // Runs f() under the mutex if still alive; swallows exceptions so that none
  // reaches libdatachannel.
  template <class F>
  void guarded(F&& f) {
    std::lock_guard<std::recursive_mutex> lock(mutex);
    if (!alive) return;
    try {
      f();
    } catch (...) {
    }
  }

  // After this returns no user callback is running (except a caller's own
  // frame) and none will start. Returns the callbacks so the caller destroys
  // them outside the lock, on its own thread.
  SenderCallbacks deactivate() {
    std::lock_guard<std::recursive_mutex> lock(mutex);
    alive = false;
    pc = nullptr;
    track_open.store(false, std::memory_order_release);
    return std::exchange(callbacks, SenderCallbacks{});
  }
};

struct SenderRtc {
  std::shared_ptr<rtc::PeerConnection> pc;
  std::shared_ptr<rtc::Track> track;  // set once (under WebRTCSender::mutex_), before it can open
  std::shared_ptr<rtc::RtpPacketizationConfig> rtp_config;
  std::vector<rtc::Candidate> pending_candidates;  // remote candidates received before the answer
  // When the listener offered: which of its sections' trickled candidates are
  // the audio's transport (the others belong to sections we rejected).
  std::optional<AudioTransport> offered_transport;
  size_t remote_candidates = 0;                    // admitted so far, from descriptions and trickled
  std::string cname;
  uint32_t rtp_start = 0;
};

}  // namespace detail

namespace {

// A browser sends a handful; each mDNS name costs libdatachannel a lookup
// thread, so a peer may not send an unbounded number.
constexpr size_t kMaxRemoteCandidates = 64;
constexpr int kDefaultOpusPayloadType = 111;
// Packets kept per listener for retransmission on a NACK: 1.28 s of 20 ms
// frames. A resent audio packet only helps while the receiver's jitter buffer
// has not played past it (well under a second), and libdatachannel's default
// of 512 packets is 10 s and ~200 KB per listener, 20 MB at 100 listeners.
constexpr size_t kNackHistoryPackets = 64;
constexpr const char* kDefaultMid = "0";

uint32_t random_u32() {
  static std::mutex m;
  static std::mt19937 gen{std::random_device{}()};
  std::lock_guard<std::mutex> lock(m);
  return std::uniform_int_distribution<uint32_t>{}(gen);
}

uint32_t ntp_now_middle32() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const double secs = std::chrono::duration<double>(now).count() + 2208988800.0;
  const auto ntp = static_cast<uint64_t>(secs * 4294967296.0);
  return static_cast<uint32_t>(ntp >> 16);
}

uint32_t be32(const std::byte* p) {
  return (uint32_t(std::to_integer<uint8_t>(p[0])) << 24) |
         (uint32_t(std::to_integer<uint8_t>(p[1])) << 16) |
         (uint32_t(std::to_integer<uint8_t>(p[2])) << 8) | uint32_t(std::to_integer<uint8_t>(p[3]));
}

const char* state_name(rtc::PeerConnection::State s) {
  using S = rtc::PeerConnection::State;
  switch (s) {
    case S::New: return "new";
    case S::Connecting: return "connecting";
    case S::Connected: return "connected";
    case S::Disconnected: return "disconnected";
    case S::Failed: return "failed";
    case S::Closed: return "closed";
  }
  return "unknown";
}

// libdatachannel's packetizer marks the last packet of every frame, as video
// needs. For audio the marker means "first packet of a talkspurt" (RFC 3551
// 4.1), and a receiver may reset its jitter buffer on it: our stream is one
// talkspurt (no DTX), so only a listener's first packet carries it. Frames are
// sent from one thread, hence the plain bool.
class OpusPacketizer final : public rtc::RtpPacketizer {
 public:
  explicit OpusPacketizer(std::shared_ptr<rtc::RtpPacketizationConfig> config)
      : rtc::RtpPacketizer(std::move(config)) {}

 protected:
  rtc::message_ptr packetize(const rtc::binary& payload, bool /*last_of_frame*/) override {
    return rtc::RtpPacketizer::packetize(payload, std::exchange(first_packet_, false));
  }

 private:
  bool first_packet_ = true;
};

// Last handler of the chain: counts outgoing RTP packets and computes the
// round-trip time from report blocks about our SSRC in incoming RTCP
// (RFC 3550 6.4.1: RTT = now - LSR - DLSR, in 1/65536 s). RtcpSrReporter
// stamps its SRs with the system clock in NTP format, which we reuse.
class StatsHandler final : public rtc::MediaHandler {
 public:
  explicit StatsHandler(std::shared_ptr<detail::SenderShared> shared) : shared_(std::move(shared)) {}

  void outgoing(rtc::message_vector& messages, const rtc::message_callback&) override {
    for (const auto& m : messages) {
      if (!m || m->type == rtc::Message::Control) continue;
      shared_->packets.fetch_add(1, std::memory_order_relaxed);
      shared_->bytes.fetch_add(m->size(), std::memory_order_relaxed);
    }
  }

  void incoming(rtc::message_vector& messages, const rtc::message_callback&) override {
    for (const auto& m : messages) {
      if (m && m->type == rtc::Message::Control) parse_rtcp(m->data(), m->size());
    }
  }

 private:
  void parse_rtcp(const std::byte* p, size_t n) {
    size_t off = 0;
    while (off + 8 <= n) {
      const uint8_t b0 = std::to_integer<uint8_t>(p[off]);
      if ((b0 >> 6) != 2) return;
      const int count = b0 & 0x1f;
      const uint8_t pt = std::to_integer<uint8_t>(p[off + 1]);
      const size_t len =
          ((size_t(std::to_integer<uint8_t>(p[off + 2])) << 8) | std::to_integer<uint8_t>(p[off + 3])) *
              4 + 4;
      if (off + len > n) return;
      size_t blocks = 0;
      if (pt == 201) blocks = off + 8;        // RR: header, sender SSRC
      else if (pt == 200) blocks = off + 28;  // SR: header, sender SSRC, 20-byte sender info
      if (blocks != 0) {
        for (int i = 0; i < count; ++i) {
          const size_t b = blocks + size_t(i) * 24;
          if (b + 24 > off + len) break;
          if (be32(p + b) != shared_->ssrc) continue;
          const uint32_t lsr = be32(p + b + 16);
          const uint32_t dlsr = be32(p + b + 20);
          if (lsr == 0) continue;  // no SR received yet
          const uint32_t elapsed = ntp_now_middle32() - lsr;
          if (elapsed < dlsr) continue;  // clock oddity
          const double rtt = double(elapsed - dlsr) * 1000.0 / 65536.0;
          if (rtt < 60000.0) shared_->rtt_ms.store(rtt, std::memory_order_relaxed);
        }
      }
      off += len;
    }
  }

  std::shared_ptr<detail::SenderShared> shared_;
};

// We answer one audio section and reject the rest, so the session's transport
// is the one that section offers (RFC 8843 7.3: a rejected section's transport
// is not used). libdatachannel would take the first section's ICE credentials
// and every section's candidates: with a peer that gives each section its own
// transport (aiortc by default) and video first, ICE connected to the rejected
// video transport and no audio arrived. Only the candidates of sections that
// share the audio's transport (AudioTransport) stay, and add_remote_candidate()
// sorts the trickled ones. An offer with no section of a transport of its own
// keeps all it has.
void use_transport_of_audio_section(rtc::Description& description, const AudioTransport& audio) {
  if (!audio.ice_ufrag.empty() && !audio.ice_pwd.empty()) description.setIceAttribute(audio.ice_ufrag, audio.ice_pwd);
  if (audio.separate_mids.empty()) return;
  description.extractCandidates();
  for (const auto& line : audio.candidates) {
    try {
      description.addCandidate(rtc::Candidate(line));
    } catch (const std::exception& e) {
      throw SignalingError(std::string("malformed SDP: offer: candidate: ") + e.what());
    }
  }
}

}  // namespace

// ---- WebRTCSender ------------------------------------------------------------

WebRTCSender::WebRTCSender(const IceConfig& ice, int channels, SenderCallbacks callbacks)
    : channels_(channels),
      ice_(ice),
      shared_(std::make_shared<detail::SenderShared>()),
      rtc_(std::make_unique<detail::SenderRtc>()) {
  if (channels != 1 && channels != 2) {
    throw std::invalid_argument("WebRTCSender: channels must be 1 or 2, got " +
                                std::to_string(channels));
  }
  configure_libdatachannel_once();

  rtc::Configuration config;
  if (!ice.bind_address.empty()) config.bindAddress = ice.bind_address;
  if (ice.port_range_begin != 0 || ice.port_range_end != 0) {
    const uint16_t begin = ice.port_range_begin != 0 ? ice.port_range_begin : 1024;
    const uint16_t end = ice.port_range_end != 0 ? ice.port_range_end : 65535;
    if (begin > end) {
      throw std::invalid_argument("WebRTCSender: ICE port range begin " + std::to_string(begin) +
                                  " is greater than end " + std::to_string(end));
    }
    config.portRangeBegin = begin;
    config.portRangeEnd = end;
  }
  config.enableIceUdpMux = ice.udp_mux;
  for (const auto& url : ice.ice_servers) {
    try {
      config.iceServers.emplace_back(url);
    } catch (const std::exception& e) {
      throw std::invalid_argument("WebRTCSender: invalid ICE server \"" + url + "\": " + e.what());
    }
  }

  shared_->ssrc = 0;
  while (shared_->ssrc == 0) shared_->ssrc = random_u32();
  char cname[32];
  std::snprintf(cname, sizeof cname, "sinkcast-%08x", random_u32());
  rtc_->cname = cname;
  shared_->callbacks = std::move(callbacks);

  try {
    rtc_->pc = std::make_shared<rtc::PeerConnection>(std::move(config));
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("WebRTCSender: cannot create peer connection: ") +
                             e.what());
  }
  shared_->pc = rtc_->pc.get();

  // Callbacks capture only the shared state. Each copies its capture to a
  // local first: libdatachannel may reset (destroy) the std::function while
  // it runs when close() is called from inside it.
  auto shared = shared_;
  rtc_->pc->onLocalDescription([shared](rtc::Description description) {
    auto s = shared;
    s->guarded([&] {
      if (auto ufrag = description.iceUfrag()) s->ufrag = *ufrag;
      if (s->callbacks.on_signal) s->callbacks.on_signal(description.typeString(), std::string(description));
    });
  });
  rtc_->pc->onLocalCandidate([shared](rtc::Candidate candidate) {
    auto s = shared;
    s->guarded([&] {
      if (!s->callbacks.on_signal) return;
      const auto [mid, mline_index] = s->media();
      s->callbacks.on_signal("candidate",
                             candidate_to_json(candidate.candidate(), mid, mline_index, s->ufrag));
    });
  });
  rtc_->pc->onGatheringStateChange([shared](rtc::PeerConnection::GatheringState state) {
    if (state != rtc::PeerConnection::GatheringState::Complete) return;
    auto s = shared;
    s->guarded([&] {
      if (!s->callbacks.on_gathering_complete || s->pc == nullptr) return;
      if (auto local = s->pc->localDescription()) {
        const auto [mid, mline_index] = s->media();
        s->callbacks.on_gathering_complete(local->typeString(), std::string(*local), mid, mline_index);
      }
    });
  });
  rtc_->pc->onStateChange([shared](rtc::PeerConnection::State state) {
    using S = rtc::PeerConnection::State;
    if (state != S::Failed && state != S::Disconnected && state != S::Closed) return;
    auto s = shared;
    s->guarded([&] {
      s->track_open.store(false, std::memory_order_release);
      if (s->remote_closed_notified.exchange(true)) return;
      if (s->callbacks.on_closed) s->callbacks.on_closed(state_name(state));
    });
  });
  // A data channel the listener opens is kept open and its messages are
  // dropped: sinkcast has nothing to say on one. Unread, libdatachannel would
  // queue 1024 messages and then block one of its worker threads for good
  // (the 1025th); dropping the channel object instead would close it.
  rtc_->pc->onDataChannel([shared](std::shared_ptr<rtc::DataChannel> channel) {
    channel->onMessage([](rtc::message_variant) {});
    auto s = shared;
    std::lock_guard<std::mutex> lock(s->data_mutex);
    s->peer_channels.push_back(std::move(channel));
  });
  // Media sections of a remote offer other than the one we answer (video,
  // a second audio) are rejected (port 0) rather than silently accepted.
  rtc_->pc->onTrack([](std::shared_ptr<rtc::Track> track) {
    try {
      auto description = track->description();
      description.markRemoved();
      track->setDescription(std::move(description));
    } catch (...) {
    }
  });
}

WebRTCSender::~WebRTCSender() {
  close();
  // Track first, then the peer connection (its destructor closes it again, no-op).
  rtc_->track.reset();
  rtc_->pc.reset();
}

void WebRTCSender::setup_track_locked(const std::string& mid, int payload_type, int mline_index,
                                      bool offer_nack) {
  rtc::Description::Audio audio(mid, rtc::Description::Direction::SendOnly);
  const char* fmtp = channels_ == 2 ? "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1"
                                    : "minptime=10;useinbandfec=1";
  audio.addOpusCodec(payload_type, std::string(fmtp));
  // The RtcpNackResponder below answers NACKs; a compliant receiver sends them
  // only when the SDP says so.
  if (offer_nack) audio.rtpMap(payload_type)->addFeedback("nack");
  audio.addSSRC(shared_->ssrc, rtc_->cname, std::string("sinkcast"), std::string("sinkcast-audio"));

  auto track = rtc_->pc->addTrack(std::move(audio));

  auto config = std::make_shared<rtc::RtpPacketizationConfig>(
      shared_->ssrc, rtc_->cname, static_cast<uint8_t>(payload_type),
      rtc::OpusRtpPacketizer::DefaultClockRate);
  auto packetizer = std::make_shared<OpusPacketizer>(config);
  packetizer->addToChain(std::make_shared<rtc::RtcpSrReporter>(config));
  packetizer->addToChain(std::make_shared<rtc::RtcpNackResponder>(kNackHistoryPackets));
  packetizer->addToChain(std::make_shared<StatsHandler>(shared_));
  track->setMediaHandler(packetizer);

  auto shared = shared_;
  track->onOpen([shared] {
    auto s = shared;
    s->guarded([&] { s->track_open.store(true, std::memory_order_release); });
  });
  track->onClosed([shared] {
    auto s = shared;
    s->guarded([&] { s->track_open.store(false, std::memory_order_release); });
  });

  {
    std::lock_guard<std::mutex> lock(shared_->data_mutex);
    shared_->mid = mid;
    shared_->mline_index = mline_index < 0 ? 0 : mline_index;
  }
  rtc_->rtp_config = config;
  payload_type_.store(payload_type);
  rtc_->rtp_start = config->startTimestamp;
  rtc_->track = std::move(track);
}

void WebRTCSender::teardown() {
  // Not under mutex_ (a callback holding the guard may be waiting for it).
  SenderCallbacks released = shared_->deactivate();  // waits for a running callback
  try {
    rtc_->pc->close();  // idempotent in libdatachannel
  } catch (...) {
  }
  std::vector<std::shared_ptr<rtc::DataChannel>> channels;
  {
    std::lock_guard<std::mutex> lock(shared_->data_mutex);
    channels.swap(shared_->peer_channels);
  }
  // `released` (the user's functors) and the channels are destroyed here, on the caller's thread.
}

void WebRTCSender::accept_offer(const std::string& sdp) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (phase_ == Phase::Closed) throw SignalingError("offer received but the session is closed");
  if (phase_ == Phase::OfferSent)
    throw SignalingError("offer received but an offer was already sent to this listener");
  if (phase_ == Phase::Negotiated)
    throw SignalingError("offer received but the session is already negotiated "
                         "(renegotiation is not supported; open a new session)");

  const OfferAudioInfo info = inspect_remote_offer(sdp);  // throws; nothing changed yet
  rtc::Description description = [&] {
    try {
      return rtc::Description(sdp, rtc::Description::Type::Offer);
    } catch (const std::exception& e) {
      throw SignalingError(std::string("malformed SDP: offer: ") + e.what());
    }
  }();
  use_transport_of_audio_section(description, info.transport);
  admit_remote_candidates_locked(description.candidates());  // throws; nothing changed yet
  rtc_->offered_transport = info.transport;

  try {
    setup_track_locked(info.mid, info.opus_payload_type, info.mline_index, info.nack);
    rtc_->pc->setRemoteDescription(std::move(description));  // the answer follows via on_signal, from a libdatachannel thread
  } catch (const std::exception& e) {
    fail_to_start(lock, "could not answer the offer: ", "offer rejected: ", e);
  }
  phase_ = Phase::Negotiated;
}

void WebRTCSender::create_offer() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (phase_ == Phase::Closed) throw SignalingError("cannot offer: the session is closed");
  if (phase_ != Phase::Idle)
    throw SignalingError("cannot offer: the session already has an offer or is negotiated");
  try {
    setup_track_locked(kDefaultMid, kDefaultOpusPayloadType, 0, true);
    rtc_->pc->setLocalDescription(rtc::Description::Type::Offer);
  } catch (const std::exception& e) {
    fail_to_start(lock, "could not create an offer: ", "could not create an offer: ", e);
  }
  phase_ = Phase::OfferSent;
}

void WebRTCSender::accept_answer(const std::string& sdp) {
  std::unique_lock<std::mutex> lock(mutex_);
  switch (phase_) {
    case Phase::Idle: throw SignalingError("answer received but no offer was sent");
    case Phase::Negotiated: throw SignalingError("answer received but the session is already negotiated");
    case Phase::Closed: throw SignalingError("answer received but the session is closed");
    case Phase::OfferSent: break;
  }
  const std::string our_mid = shared_->media().first;
  const OfferAudioInfo info = inspect_remote_answer(sdp, our_mid);  // throws; nothing changed
  rtc::Description description = [&] {
    try {
      return rtc::Description(sdp, rtc::Description::Type::Answer);
    } catch (const std::exception& e) {
      throw SignalingError(std::string("malformed SDP: answer: ") + e.what());
    }
  }();
  admit_remote_candidates_locked(description.candidates());  // throws; nothing changed

  // The track cannot be open before the remote description is set, so the
  // mixer thread does not read the config yet.
  rtc_->rtp_config->payloadType = static_cast<uint8_t>(info.opus_payload_type);
  payload_type_.store(info.opus_payload_type);
  try {
    rtc_->pc->setRemoteDescription(std::move(description));
  } catch (const std::exception& e) {
    SignalingError error(std::string("answer rejected: ") + e.what() + " (the session is closed)");
    fail_and_unlock(lock);
    throw error;
  }
  phase_ = Phase::Negotiated;

  auto pending = std::move(rtc_->pending_candidates);
  rtc_->pending_candidates.clear();
  for (auto& candidate : pending) {
    try {
      rtc_->pc->addRemoteCandidate(std::move(candidate));
    } catch (...) {
      // A bad early candidate does not invalidate the answer.
    }
  }
}

void WebRTCSender::add_remote_candidate(const std::string& message) {
  const ParsedCandidate parsed = parse_candidate_message(message);  // throws
  std::lock_guard<std::mutex> lock(mutex_);
  if (phase_ == Phase::Closed) throw SignalingError("candidate received but the session is closed");
  if (phase_ == Phase::Idle) throw SignalingError("candidate before any offer");
  if (parsed.end_of_candidates) return;
  // A candidate of a section we rejected, on a transport of its own: ICE must
  // not connect over it (the audio would go to a transport nobody reads).
  if (rtc_->offered_transport && !rtc_->offered_transport->shares(parsed.mid, parsed.mline_index)) return;

  rtc::Candidate candidate = make_remote_candidate(parsed);
  admit_remote_candidates_locked({candidate});
  if (phase_ == Phase::OfferSent) {
    rtc_->pending_candidates.push_back(std::move(candidate));
    return;
  }
  try {
    rtc_->pc->addRemoteCandidate(std::move(candidate));
  } catch (const std::exception& e) {
    throw SignalingError(std::string("candidate rejected: ") + e.what());
  }
}

// Every remote candidate, in a description or trickled, passes here before
// libdatachannel sees it.
void WebRTCSender::admit_remote_candidates_locked(const std::vector<rtc::Candidate>& candidates) {
  if (rtc_->remote_candidates + candidates.size() > kMaxRemoteCandidates)
    throw SignalingError("too many remote candidates for one session (at most " +
                         std::to_string(kMaxRemoteCandidates) + ")");
  for (const auto& candidate : candidates) check_candidate_address(candidate, ice_.allow_mdns_candidates);
  rtc_->remote_candidates += candidates.size();
}

bool WebRTCSender::track_open() const {
  return shared_->track_open.load(std::memory_order_acquire);
}

bool WebRTCSender::connected() const {
  return !closed_.load() && rtc_->pc->state() == rtc::PeerConnection::State::Connected;
}

bool WebRTCSender::send_frame(const uint8_t* data, size_t size,
                              std::chrono::microseconds frame_duration) {
  if (!shared_->track_open.load(std::memory_order_acquire)) return false;
  // rtc_->track was set before the track could open (happens-before via the
  // acquire above), and is never reset before the destructor.
  const uint32_t timestamp = rtc_->rtp_start + rtp_timestamp_;
  if (frame_duration.count() > 0)
    rtp_timestamp_ += static_cast<uint32_t>(frame_duration.count() * 48 / 1000);  // 48 kHz clock
  if (data == nullptr || size == 0) return true;
  try {
    rtc_->track->sendFrame(reinterpret_cast<const rtc::byte*>(data), size, rtc::FrameInfo(timestamp));
  } catch (...) {
    // Closed concurrently or transport gone: the frame is dropped.
  }
  return true;
}

SenderStats WebRTCSender::stats() const {
  SenderStats s;
  s.state = closed_.load() ? "closed" : state_name(rtc_->pc->state());
  s.packets_sent = shared_->packets.load(std::memory_order_relaxed);
  s.bytes_sent = shared_->bytes.load(std::memory_order_relaxed);
  s.rtt_ms = shared_->rtt_ms.load(std::memory_order_relaxed);
  s.track_open = shared_->track_open.load(std::memory_order_acquire);
  return s;
}

void WebRTCSender::fail_to_start(std::unique_lock<std::mutex>& lock, const char* local_prefix,
                                 const char* peer_prefix, const std::exception& e) {
  // libdatachannel says only "Failed to gather local ICE candidates" when ICE
  // could not open its socket; when the cause is on this side, say which.
  const std::string cause = explain_ice_socket_failure(ice_);
  const std::string what = e.what();
  fail_and_unlock(lock);
  if (!cause.empty()) throw LocalResourceError(local_prefix + what + cause);
  throw SignalingError(peer_prefix + what);
}

void WebRTCSender::fail_and_unlock(std::unique_lock<std::mutex>& lock) {
  phase_ = Phase::Closed;
  closed_.store(true);
  lock.unlock();
  teardown();
}

void WebRTCSender::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    phase_ = Phase::Closed;
    closed_.store(true);
  }
  // Every caller (also a second, concurrent one) waits here until no callback
  // is running, so "no callback after close() returns" holds for all of them.
  teardown();
}

bool WebRTCSender::closed() const { return closed_.load(); }

std::string WebRTCSender::local_description() const {
  // rtc_->pc is set in the constructor and only reset in the destructor.
  if (auto local = rtc_->pc->localDescription()) return std::string(*local);
  return {};
}

std::string WebRTCSender::mid() const { return shared_->media().first; }

int WebRTCSender::payload_type() const { return payload_type_.load(); }

uint32_t WebRTCSender::ssrc() const { return shared_->ssrc; }

}  // namespace sinkcast
