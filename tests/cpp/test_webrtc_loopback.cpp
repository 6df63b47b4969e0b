// Standalone loopback test of WebRTCSender, the signaling helpers and
// OpusEncoder: a WebRTCSender and a plain rtc::PeerConnection listener
// (recvonly Opus) talk over 127.0.0.1, in both offer directions.
//
// No framework: checks.h prints each check and "N passed, M failed"; exit
// code 0 only when everything passed.

#include <rtc/rtc.hpp>

#include <opus.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "checks.h"
#include "codec/opus_encoder.h"
#include "webrtc/signaling_message.h"
#include "webrtc/webrtc_sender.h"

using namespace std::chrono_literals;
using sinkcast::SignalingError;

using sinkcast_tests::check;
using sinkcast_tests::wait_until;

namespace {

// Runs f, expects a SignalingError whose message contains `needle`.
void expect_signaling_error(const std::string& what, const std::string& needle,
                            const std::function<void()>& f) {
  try {
    f();
    check(false, what + " (no exception)");
  } catch (const SignalingError& e) {
    const bool has = std::string(e.what()).find(needle) != std::string::npos;
    check(has, what + " -> SignalingError(\"" + e.what() + "\")");
  } catch (const std::exception& e) {
    check(false, what + " (wrong exception type: " + e.what() + ")");
  }
}

template <class E>
void expect_throw(const std::string& what, const std::function<void()>& f) {
  try {
    f();
    check(false, what + " (no exception)");
  } catch (const E& e) {
    check(true, what + " -> " + e.what());
  } catch (const std::exception& e) {
    check(false, what + " (wrong exception type: " + e.what() + ")");
  }
}

bool contains(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}

// ---- a tiny signaling "network": callbacks only enqueue, the main loop delivers.

enum class Side { FromSender, FromReceiver };
struct Event {
  Side side;
  std::string type;
  std::string message;
};

class Bus {
 public:
  void push(Side side, std::string type, std::string message) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      events_.push_back({side, std::move(type), std::move(message)});
    }
    cv_.notify_all();
  }
  bool pop(Event& out, std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!cv_.wait_for(lock, wait, [&] { return !events_.empty(); })) return false;
    out = std::move(events_.front());
    events_.pop_front();
    return true;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Event> events_;
};

// The listener: a plain libdatachannel peer with a recvonly Opus track that
// counts RTP packets and remembers their payload types and payloads.
struct Receiver {
  std::shared_ptr<rtc::PeerConnection> pc;
  std::shared_ptr<rtc::Track> track;
  std::mutex mutex;
  std::vector<int> payload_types;
  std::vector<std::vector<uint8_t>> payloads;
  std::atomic<int> packets{0};

  explicit Receiver(Bus& bus) {
    rtc::Configuration config;
    config.bindAddress = "127.0.0.1";
    pc = std::make_shared<rtc::PeerConnection>(config);
    pc->onLocalDescription([&bus](rtc::Description d) {
      bus.push(Side::FromReceiver, d.typeString(), std::string(d));
    });
    pc->onLocalCandidate([&bus](rtc::Candidate c) {
      // Exactly what a browser app would send: JSON.stringify(event.candidate).
      bus.push(Side::FromReceiver, "candidate", sinkcast::candidate_to_json(c.candidate(), c.mid()));
    });
    pc->onTrack([this](std::shared_ptr<rtc::Track> t) { attach(std::move(t)); });
  }

  void attach(std::shared_ptr<rtc::Track> t) {
    t->setMediaHandler(std::make_shared<rtc::RtcpReceivingSession>());  // sends RRs (-> RTT)
    t->onMessage(
        [this](rtc::binary data) {
          if (data.size() < 12) return;
          const auto* p = reinterpret_cast<const uint8_t*>(data.data());
          const int pt = p[1] & 0x7f;
          size_t header = 12 + 4 * size_t(p[0] & 0x0f);
          if ((p[0] & 0x10) && data.size() >= header + 4) {
            header += 4 + 4 * ((size_t(p[header + 2]) << 8) | p[header + 3]);
          }
          std::lock_guard<std::mutex> lock(mutex);
          payload_types.push_back(pt);
          if (header < data.size()) payloads.emplace_back(p + header, p + data.size());
          packets.fetch_add(1);
        },
        nullptr);
    track = std::move(t);
  }

  void offer_recvonly_opus(const std::string& mid, int pt) {
    rtc::Description::Audio audio(mid, rtc::Description::Direction::RecvOnly);
    audio.addOpusCodec(pt);
    attach(pc->addTrack(audio));
    pc->setLocalDescription();
  }
};

// Delivers bus events between the two parties until done() or timeout.
bool pump(Bus& bus, sinkcast::WebRTCSender& sender, Receiver& receiver,
          const std::function<bool()>& done, std::chrono::milliseconds timeout,
          std::vector<std::string>* errors) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    Event e;
    if (!bus.pop(e, 20ms)) continue;
    try {
      if (e.side == Side::FromReceiver) {
        if (e.type == "offer") sender.accept_offer(e.message);
        else if (e.type == "answer") sender.accept_answer(e.message);
        else if (e.type == "candidate") sender.add_remote_candidate(e.message);
      } else {
        if (e.type == "offer" || e.type == "answer") {
          receiver.pc->setRemoteDescription(rtc::Description(e.message, e.type));
        } else if (e.type == "candidate") {
          auto c = sinkcast::parse_candidate_message(e.message);
          if (!c.end_of_candidates) receiver.pc->addRemoteCandidate(rtc::Candidate(c.candidate, c.mid));
        }
      }
    } catch (const std::exception& ex) {
      if (errors) errors->push_back(e.type + ": " + ex.what());
    }
  }
  return true;
}

// Encodes 1 s of a 440 Hz stereo sine in 20 ms frames and sends each, paced in real time.
void stream_one_second(sinkcast::WebRTCSender& sender, size_t* total_bytes) {
  sinkcast::OpusEncoder encoder(sinkcast::OpusSettings{});
  const int n = encoder.frame_samples();
  std::vector<float> pcm(size_t(n) * 2);
  std::vector<uint8_t> packet(sinkcast::OpusEncoder::kMaxPacketBytes);
  const double two_pi_f = 2.0 * M_PI * 440.0 / 48000.0;
  size_t t = 0;
  auto next = std::chrono::steady_clock::now();
  for (int frame = 0; frame < 50; ++frame) {
    for (int i = 0; i < n; ++i, ++t) {
      const float v = 0.25f * float(std::sin(two_pi_f * double(t)));
      pcm[2 * size_t(i)] = v;
      pcm[2 * size_t(i) + 1] = v;
    }
    const size_t bytes = encoder.encode(pcm.data(), packet.data(), packet.size());
    *total_bytes += bytes;
    sender.send_frame(packet.data(), bytes, std::chrono::microseconds(20000));
    next += 20ms;
    std::this_thread::sleep_until(next);
  }
}

// Decodes the received payloads and returns the RMS of the decoded signal.
double decoded_rms(const std::vector<std::vector<uint8_t>>& payloads) {
  int err = 0;
  OpusDecoder* dec = opus_decoder_create(48000, 2, &err);
  if (err != OPUS_OK) return -1;
  std::vector<float> out(5760 * 2);
  double sum = 0;
  size_t count = 0;
  for (const auto& p : payloads) {
    const int n = opus_decode_float(dec, p.data(), int(p.size()), out.data(), 5760, 0);
    if (n < 0) {
      opus_decoder_destroy(dec);
      return -1;
    }
    for (int i = 0; i < n * 2; ++i) sum += double(out[size_t(i)]) * out[size_t(i)];
    count += size_t(n) * 2;
  }
  opus_decoder_destroy(dec);
  return count ? std::sqrt(sum / double(count)) : 0;
}

struct CallbackLog {
  std::atomic<int> signals{0};
  std::atomic<int> closed{0};
  std::mutex mutex;
  std::string closed_reason;
  std::string answer_sdp, offer_sdp, first_candidate;
  std::atomic<int> gathering_complete{0};
  std::string gathered_sdp;
};

sinkcast::SenderCallbacks make_callbacks(Bus& bus, CallbackLog& log) {
  sinkcast::SenderCallbacks cb;
  cb.on_signal = [&bus, &log](const std::string& type, const std::string& message) {
    log.signals.fetch_add(1);
    {
      std::lock_guard<std::mutex> lock(log.mutex);
      if (type == "answer") log.answer_sdp = message;
      if (type == "offer") log.offer_sdp = message;
      if (type == "candidate" && log.first_candidate.empty()) log.first_candidate = message;
    }
    bus.push(Side::FromSender, type, message);
  };
  cb.on_closed = [&log](const std::string& reason) {
    std::lock_guard<std::mutex> lock(log.mutex);
    log.closed_reason = reason;
    log.closed.fetch_add(1);
  };
  cb.on_gathering_complete = [&log](const std::string&, const std::string& sdp, const std::string&, int) {
    std::lock_guard<std::mutex> lock(log.mutex);
    log.gathered_sdp = sdp;
    log.gathering_complete.fetch_add(1);
  };
  return cb;
}

sinkcast::IceConfig loopback_ice() {
  sinkcast::IceConfig ice;
  ice.bind_address = "127.0.0.1";
  return ice;
}

// ---- handcrafted SDP for error cases -----------------------------------------

std::string sdp_with(const std::string& media_section, bool with_fingerprint = true) {
  std::string s =
      "v=0\r\n"
      "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
      "s=-\r\n"
      "t=0 0\r\n"
      "a=group:BUNDLE 0\r\n"
      "a=ice-ufrag:Wq8e\r\n"
      "a=ice-pwd:Z4qNnYb6mYQm0bVj3Xb4l2rW\r\n";
  if (with_fingerprint)
    s += "a=fingerprint:sha-256 "
         "7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:"
         "19:08\r\n";
  s += "a=setup:actpass\r\n";
  return s + media_section;
}

const char* kVideoOnly =
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=mid:0\r\n"
    "a=recvonly\r\n"
    "a=rtpmap:96 VP8/90000\r\n";

const char* kAudioNoOpus =
    "m=audio 9 UDP/TLS/RTP/SAVPF 0 8\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=mid:0\r\n"
    "a=recvonly\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n";

const char* kAudioSendOnly =
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=mid:0\r\n"
    "a=sendonly\r\n"
    "a=rtpmap:111 opus/48000/2\r\n";

const char* kAudioOpus =
    "m=audio 9 UDP/TLS/RTP/SAVPF 109 0\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=mid:a1\r\n"
    "a=recvonly\r\n"
    "a=rtpmap:109 opus/48000/2\r\n"
    "a=fmtp:109 minptime=10;useinbandfec=1;stereo=1\r\n"
    "a=rtpmap:0 PCMU/8000\r\n";

// ---- test groups -------------------------------------------------------------

void test_opus_encoder() {
  std::printf("OpusEncoder\n");
  using sinkcast::OpusEncoder;
  using sinkcast::OpusSettings;
  {
    OpusEncoder e20(OpusSettings{});
    check(e20.frame_samples() == 960, "20 ms frame = 960 samples");
    OpusSettings s;
    s.frame_ms = 10;
    s.channels = 1;
    s.low_delay = true;
    OpusEncoder e10(s);
    check(e10.frame_samples() == 480, "10 ms frame = 480 samples");
    std::vector<float> pcm(480, 0.1f);
    std::vector<uint8_t> out(OpusEncoder::kMaxPacketBytes);
    const size_t n = e10.encode(pcm.data(), out.data(), out.size());
    check(n > 0 && n <= out.size(), "mono low-delay frame encodes (" + std::to_string(n) + " bytes)");
    check(opus_packet_get_samples_per_frame(out.data(), 48000) == 480, "packet TOC says 10 ms");
  }
  auto bad = [](OpusSettings s, const std::string& what) {
    expect_throw<std::invalid_argument>(what, [s] { sinkcast::OpusEncoder e(s); });
  };
  OpusSettings s;
  s.channels = 3;
  bad(s, "channels=3 rejected");
  s = {};
  s.frame_ms = 15;
  bad(s, "frame_ms=15 rejected");
  s = {};
  s.bitrate_bps = 100;
  bad(s, "bitrate 100 rejected");
  s = {};
  s.complexity = 11;
  bad(s, "complexity 11 rejected");
}

void test_signaling_messages() {
  std::printf("signaling messages\n");
  const std::string line = "candidate:1 1 UDP 2122317823 127.0.0.1 50000 typ host";
  const std::string json = sinkcast::candidate_to_json(line, "0");
  check(json == "{\"candidate\":\"" + line + "\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}",
        "candidate_to_json looks like a browser's: " + json);
  auto p = sinkcast::parse_candidate_message(json);
  check(p.candidate == line && p.mid == "0" && !p.end_of_candidates && p.mline_index == 0,
        "JSON candidate round-trips");
  p = sinkcast::parse_candidate_message(line);
  check(p.candidate == line && p.mid.empty(), "bare candidate line accepted");
  p = sinkcast::parse_candidate_message("a=" + line + "\r\n");
  check(p.candidate == line, "a=candidate line accepted");
  check(sinkcast::parse_candidate_message("{\"candidate\":\"\",\"sdpMid\":\"0\"}").end_of_candidates,
        "empty candidate = end of candidates");
  check(sinkcast::parse_candidate_message("null").end_of_candidates, "null = end of candidates");
  expect_signaling_error("invalid JSON", "invalid JSON", [] {
    sinkcast::parse_candidate_message("{\"candidate\": ");
  });
  expect_signaling_error("candidate not a string", "must be a string", [] {
    sinkcast::parse_candidate_message("{\"candidate\": 5}");
  });
  expect_signaling_error("garbage candidate", "malformed candidate", [] {
    sinkcast::parse_candidate_message("candidate:garbage");
  });
  expect_signaling_error("not a candidate", "malformed candidate", [] {
    sinkcast::parse_candidate_message("hello");
  });
  expect_signaling_error("oversized message", "too large", [] {
    sinkcast::parse_candidate_message(std::string(70000, 'x'));
  });

  auto info = sinkcast::inspect_remote_offer(sdp_with(kAudioOpus));
  check(info.mid == "a1" && info.opus_payload_type == 109 && info.mline_index == 0 && info.stereo,
        "inspect_remote_offer finds mid a1 / PT 109 / stereo");
  expect_signaling_error("garbage SDP", "malformed SDP", [] {
    sinkcast::inspect_remote_offer("this is not SDP");
  });
  expect_signaling_error("empty SDP", "malformed SDP", [] { sinkcast::inspect_remote_offer(""); });
  expect_signaling_error("video-only offer", "no audio m-line", [] {
    sinkcast::inspect_remote_offer(sdp_with(kVideoOnly));
  });
  expect_signaling_error("offer without Opus", "does not offer Opus", [] {
    sinkcast::inspect_remote_offer(sdp_with(kAudioNoOpus));
  });
  expect_signaling_error("sendonly audio offer", "does not receive", [] {
    sinkcast::inspect_remote_offer(sdp_with(kAudioSendOnly));
  });
  expect_signaling_error("offer without fingerprint", "fingerprint", [] {
    sinkcast::inspect_remote_offer(sdp_with(kAudioOpus, false));
  });
  expect_signaling_error("bad rtpmap number", "malformed SDP", [] {
    sinkcast::inspect_remote_offer(sdp_with("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:x opus/48000/2\r\n"));
  });
  // An answer picks its DTLS role (RFC 5763): sdp_with() says actpass, as an offer does.
  auto answer_with = [](const std::string& media) {
    std::string sdp = sdp_with(media);
    return sdp.replace(sdp.find("a=setup:actpass"), 15, "a=setup:active");
  };
  expect_signaling_error("answer rejecting audio", "rejected the audio", [&] {
    sinkcast::inspect_remote_answer(
        answer_with("m=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n"), "0");
  });
  expect_signaling_error("answer with setup:actpass", "a=setup:active or a=setup:passive", [] {
    sinkcast::inspect_remote_answer(
        sdp_with("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n"), "0");
  });
}

void test_sender_errors() {
  std::printf("WebRTCSender error handling\n");
  Bus bus;
  CallbackLog log;
  expect_throw<std::invalid_argument>("channels=5 rejected", [&] {
    sinkcast::WebRTCSender s(loopback_ice(), 5, make_callbacks(bus, log));
  });
  expect_throw<std::invalid_argument>("bad ICE server URL rejected", [&] {
    auto ice = loopback_ice();
    ice.ice_servers = {"bogus://x"};
    sinkcast::WebRTCSender s(ice, 2, make_callbacks(bus, log));
  });
  {
    auto ice = loopback_ice();
    ice.ice_servers = {"stun:stun.example.org:3478", "turn:user:pass@turn.example.org:3478"};
    ice.port_range_begin = 40000;
    ice.port_range_end = 40100;
    bool ok = true;
    try {
      sinkcast::WebRTCSender s(ice, 2, make_callbacks(bus, log));
    } catch (...) {
      ok = false;
    }
    check(ok, "stun/turn URLs and a port range accepted");
  }
  sinkcast::WebRTCSender sender(loopback_ice(), 2, make_callbacks(bus, log));
  expect_signaling_error("candidate before any offer", "candidate before any offer", [&] {
    sender.add_remote_candidate("{\"candidate\":\"candidate:1 1 UDP 2122317823 127.0.0.1 5000 typ host\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}");
  });
  expect_signaling_error("answer before offer", "no offer was sent", [&] {
    sender.accept_answer(sdp_with(kAudioOpus));
  });
  expect_signaling_error("garbage SDP offer", "malformed SDP", [&] { sender.accept_offer("garbage"); });
  expect_signaling_error("video-only offer", "no audio m-line", [&] {
    sender.accept_offer(sdp_with(kVideoOnly));
  });
  expect_signaling_error("offer without Opus", "does not offer Opus", [&] {
    sender.accept_offer(sdp_with(kAudioNoOpus));
  });
  check(!sender.closed() && sender.stats().state == "new", "sender unchanged after rejected offers");
  sender.close();
  sender.close();
  check(sender.closed() && sender.stats().state == "closed", "close() is idempotent");
  expect_signaling_error("offer after close", "closed", [&] { sender.accept_offer(sdp_with(kAudioOpus)); });
}

// (a) the listener offers, the sender answers.
void test_listener_offers() {
  std::printf("loopback (a): listener offers, sender answers\n");
  Bus bus;
  CallbackLog log;
  sinkcast::WebRTCSender sender(loopback_ice(), 2, make_callbacks(bus, log));
  Receiver receiver(bus);

  // A rejected offer first: must leave the sender usable.
  expect_signaling_error("garbage offer before the real one", "malformed SDP",
                         [&] { sender.accept_offer("v=0\r\nnonsense\r\n"); });

  receiver.offer_recvonly_opus("listener-audio", 109);
  std::vector<std::string> errors;
  const bool open = pump(bus, sender, receiver, [&] { return sender.track_open() && receiver.track && receiver.track->isOpen(); },
                         10s, &errors);
  for (const auto& e : errors) std::printf("        relay error: %s\n", e.c_str());
  check(errors.empty(), "signaling relayed without errors");
  check(open, "track open on both sides");
  {
    std::lock_guard<std::mutex> lock(log.mutex);
    if (std::getenv("SINKCAST_TEST_VERBOSE")) std::printf("---- answer ----\n%s----\n", log.answer_sdp.c_str());
    check(contains(log.answer_sdp, "a=mid:listener-audio"), "answer uses the offer's mid");
    check(contains(log.answer_sdp, "a=rtpmap:109 opus/48000/2"), "answer uses the offer's Opus PT 109");
    check(contains(log.answer_sdp, "sprop-stereo=1") && contains(log.answer_sdp, ";stereo=1"),
          "answer signals stereo");
    check(contains(log.answer_sdp, "a=sendonly"), "answer is sendonly");
    check(contains(log.first_candidate, "\"sdpMid\":\"listener-audio\"") &&
              contains(log.first_candidate, "127.0.0.1"),
          "local candidate JSON: " + log.first_candidate);
  }
  check(sender.mid() == "listener-audio" && sender.payload_type() == 109, "mid()/payload_type()");
  check(wait_until([&] { return log.gathering_complete.load() == 1; }, 5s),
        "on_gathering_complete fired once");
  {
    std::lock_guard<std::mutex> lock(log.mutex);
    check(contains(log.gathered_sdp, "a=candidate:") && contains(log.gathered_sdp, "a=end-of-candidates"),
          "gathered SDP has candidates and end-of-candidates");
  }

  size_t encoded = 0;
  stream_one_second(sender, &encoded);
  check(wait_until([&] { return receiver.packets.load() >= 40; }, 5s),
        "receiver got >= 40 RTP packets (" + std::to_string(receiver.packets.load()) + ")");
  {
    std::lock_guard<std::mutex> lock(receiver.mutex);
    bool all_pt = !receiver.payload_types.empty();
    for (int pt : receiver.payload_types) all_pt = all_pt && pt == 109;
    check(all_pt, "every packet has payload type 109");
    const double rms = decoded_rms(receiver.payloads);
    check(rms > 0.05 && rms < 0.5, "received Opus decodes to the sine (rms " + std::to_string(rms) + ")");
  }
  auto st = sender.stats();
  check(st.packets_sent >= 50 && st.bytes_sent >= encoded && st.track_open && st.state == "connected",
        "stats: " + std::to_string(st.packets_sent) + " packets, " + std::to_string(st.bytes_sent) +
            " bytes, state " + st.state);
  check(wait_until([&] { return sender.stats().rtt_ms >= 0; }, 3s),
        "RTT from receiver reports: " + std::to_string(sender.stats().rtt_ms) + " ms");

  // After close() returns, no callback runs.
  sender.close();
  const int signals = log.signals.load(), closed = log.closed.load();
  receiver.pc->close();
  std::this_thread::sleep_for(300ms);
  check(log.signals.load() == signals && log.closed.load() == closed && closed == 0,
        "no callback after close()");
  check(!sender.track_open(), "track not open after close()");
  check(!sender.send_frame(reinterpret_cast<const uint8_t*>("x"), 1, std::chrono::microseconds(20000)),
        "send_frame after close() is a no-op");
}

// (b) the sender offers, the listener answers.
void test_sender_offers() {
  std::printf("loopback (b): sender offers, listener answers\n");
  Bus bus;
  CallbackLog log;
  sinkcast::WebRTCSender sender(loopback_ice(), 2, make_callbacks(bus, log));
  Receiver receiver(bus);

  sender.create_offer();
  expect_signaling_error("second create_offer", "cannot offer", [&] { sender.create_offer(); });
  std::vector<std::string> errors;
  const bool open = pump(bus, sender, receiver, [&] { return sender.track_open() && receiver.track && receiver.track->isOpen(); },
                         10s, &errors);
  for (const auto& e : errors) std::printf("        relay error: %s\n", e.c_str());
  check(errors.empty(), "signaling relayed without errors");
  check(open, "track open on both sides");
  {
    std::lock_guard<std::mutex> lock(log.mutex);
    check(contains(log.offer_sdp, "m=audio") && contains(log.offer_sdp, "a=rtpmap:111 opus/48000/2") &&
              contains(log.offer_sdp, "a=sendonly") && contains(log.offer_sdp, "sprop-stereo=1"),
          "offer is sendonly Opus/48000/2 PT 111, stereo");
  }
  expect_signaling_error("second answer", "already negotiated",
                         [&] { sender.accept_answer(log.offer_sdp); });

  size_t encoded = 0;
  stream_one_second(sender, &encoded);
  check(wait_until([&] { return receiver.packets.load() >= 40; }, 5s),
        "receiver got >= 40 RTP packets (" + std::to_string(receiver.packets.load()) + ")");
  {
    std::lock_guard<std::mutex> lock(receiver.mutex);
    bool all_pt = !receiver.payload_types.empty();
    for (int pt : receiver.payload_types) all_pt = all_pt && pt == 111;
    check(all_pt, "every packet has payload type 111");
  }

  // The listener hangs up: on_closed fires exactly once.
  receiver.pc->close();
  const auto t0 = std::chrono::steady_clock::now();
  const bool fired = wait_until([&] { return log.closed.load() >= 1; }, 45s);
  check(fired, "on_closed fired after the peer closed (after " +
                   std::to_string(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0).count()) + " s)");
  std::this_thread::sleep_for(200ms);
  {
    std::lock_guard<std::mutex> lock(log.mutex);
    check(log.closed.load() == 1, "on_closed fired once (reason \"" + log.closed_reason + "\")");
  }
  check(!sender.track_open(), "track not open after the peer closed");
  sender.close();
}

// Many senders created and destroyed quickly, some mid-negotiation: must not crash or hang.
void test_churn() {
  std::printf("churn\n");
  Bus bus;
  CallbackLog log;
  for (int i = 0; i < 5; ++i) {
    sinkcast::WebRTCSender a(loopback_ice(), 1, make_callbacks(bus, log));
    a.create_offer();
    sinkcast::WebRTCSender b(loopback_ice(), 2, make_callbacks(bus, log));
  }
  check(true, "10 senders created/destroyed (half mid-offer)");

  // close() from inside the sender's own callback must neither deadlock nor crash.
  std::atomic<sinkcast::WebRTCSender*> self{nullptr};
  std::atomic<int> calls{0};
  sinkcast::SenderCallbacks cb;
  cb.on_signal = [&](const std::string&, const std::string&) {
    calls.fetch_add(1);
    if (auto* s = self.load()) s->close();
  };
  {
    sinkcast::WebRTCSender s(loopback_ice(), 2, cb);
    self = &s;
    s.create_offer();
    check(wait_until([&] { return s.closed(); }, 5s), "close() from inside on_signal");
    std::this_thread::sleep_for(200ms);
    check(calls.load() == 1, "no further callbacks after the in-callback close()");
  }
}

}  // namespace

int main() {
  sinkcast::configure_libdatachannel_once();
  sinkcast::configure_libdatachannel_once();
  test_opus_encoder();
  test_signaling_messages();
  test_sender_errors();
  test_listener_offers();
  test_sender_offers();
  test_churn();
  return sinkcast_tests::checks_summary();
}
