// WebRTCSender: one WebRTC peer connection per listener, sending one Opus
// audio track (packetizer + RTCP sender reports + NACK responder, SRTP).
//
// This header does not include libdatachannel; only webrtc_sender.cpp does.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "signaling_message.h"  // SignalingError

namespace sinkcast {

struct IceConfig {
  std::string bind_address;  // e.g. "127.0.0.1"; empty = all interfaces
  uint16_t port_range_begin = 0, port_range_end = 0;  // 0/0 = libdatachannel's default range
  // Every listener on one UDP socket (libjuice's ICE UDP mux): one port to open
  // in a firewall, one file descriptor and one poll entry for all listeners.
  bool udp_mux = false;
  // "stun:host:port", "turn:user:pass@host:port", "turns:...", "turn:...?transport=tcp"
  std::vector<std::string> ice_servers;
  // Whether a remote candidate may name an mDNS ".local" host (browsers hide
  // their addresses that way); any other name is refused, never looked up.
  bool allow_mdns_candidates = true;
};

struct SenderCallbacks {
  // All are called from libdatachannel threads, one at a time per sender and
  // in order. They must not block (queue to a dispatcher) and must not throw
  // (exceptions are swallowed). None runs once close() has returned.

  // "offer" | "answer" (message = SDP) | "candidate" (message = candidate_to_json(...)).
  std::function<void(const std::string& type, const std::string& message)> on_signal;
  // Once, when the peer failed, disconnected or closed the connection (not
  // after a local close()). reason: "failed" | "disconnected" | "closed".
  std::function<void(const std::string& reason)> on_closed;
  // Optional: once, when ICE gathering is complete, with the full local
  // description (type "offer"/"answer", SDP including a=candidate lines and
  // a=end-of-candidates) for peers that do not trickle (plain WHEP clients),
  // and the mid and m-line index of the audio section, for the trickled end
  // of candidates.
  std::function<void(const std::string& type, const std::string& sdp, const std::string& mid, int mline_index)>
      on_gathering_complete;
};

struct SenderStats {
  std::string state;          // "new" | "connecting" | "connected" | "disconnected" | "failed" | "closed"
  uint64_t packets_sent = 0;  // RTP packets handed to SRTP (retransmissions excluded)
  uint64_t bytes_sent = 0;    // their RTP bytes (header + payload, before SRTP)
  double rtt_ms = -1;         // from RTCP receiver reports (LSR/DLSR); < 0 when unknown
  bool track_open = false;
};

namespace detail {
struct SenderShared;  // state shared with libdatachannel callbacks
struct SenderRtc;     // libdatachannel objects
}  // namespace detail

class WebRTCSender {
 public:
  // Throws std::invalid_argument for bad channels (not 1 or 2) or bad ICE
  // configuration (unparsable ICE server URL, port range begin > end).
  WebRTCSender(const IceConfig& ice, int channels, SenderCallbacks callbacks);
  ~WebRTCSender();  // calls close()
  WebRTCSender(const WebRTCSender&) = delete;
  WebRTCSender& operator=(const WebRTCSender&) = delete;

  // The listener offered (recvonly or sendrecv audio with Opus): answer with
  // the offer's Opus payload type and mid, sendonly, stereo signalled when
  // channels == 2. The answer comes via on_signal("answer"). Only valid on a
  // fresh sender. Throws SignalingError; if the offer is rejected before it
  // reaches libdatachannel (all validation errors) the sender is unchanged,
  // otherwise it is closed.
  void accept_offer(const std::string& sdp);
  // The engine offers: sendonly audio, Opus/48000/2 (PT 111, mid "0"); the
  // offer comes via on_signal("offer"). Only valid on a fresh sender.
  void create_offer();
  // The listener's answer to create_offer(). Its Opus payload type is used.
  void accept_answer(const std::string& sdp);
  // parse_candidate_message(); end-of-candidates is accepted and ignored.
  // Candidates that arrive between create_offer() and accept_answer() are
  // queued (at most 64) and applied with the answer.
  void add_remote_candidate(const std::string& message);

  bool track_open() const;  // lock-free
  // The peer connection is connected (ICE and DTLS), now; false once closed.
  bool connected() const;

  // Sends one encoded Opus frame. The RTP timestamp advances by
  // frame_duration * 48 kHz per call (also for frames dropped by the
  // transport). Called from the sink's mixer thread: never blocks for long,
  // never throws, no-op when the track is not open. Returns whether the track
  // was open.
  bool send_frame(const uint8_t* data, size_t size, std::chrono::microseconds frame_duration);

  SenderStats stats() const;

  // Idempotent. After it returns no callback of this sender runs. Do not call
  // it while holding a lock that the callbacks take, nor from inside one of its
  // callbacks: it takes libdatachannel's callback locks while holding the
  // sender's own, the reverse of their order on a callback's way in (the engine
  // closes a failed peer from its task thread, never from the callback).
  void close();
  bool closed() const;

  // Extras for the engine / server.
  std::string local_description() const;  // current local SDP with gathered candidates, or ""
  std::string mid() const;                 // negotiated audio mid, "" before negotiation
  int payload_type() const;                // Opus payload type in use, -1 before negotiation
  uint32_t ssrc() const;
  int channels() const { return channels_; }

 private:
  enum class Phase { Idle, OfferSent, Negotiated, Closed };

  // offer_nack: announce NACK feedback (always in our offer; in an answer
  // only when the offer asked for it, RFC 4585 4.2).
  void setup_track_locked(const std::string& mid, int payload_type, int mline_index, bool offer_nack);
  // Checks each address (check_candidate_address) and the session's total;
  // throws SignalingError, and then admits none of them.
  void admit_remote_candidates_locked(const std::vector<rtc::Candidate>& candidates);
  void fail_and_unlock(std::unique_lock<std::mutex>& lock);  // phase_ = Closed, unlock, teardown()
  // fail_and_unlock(), then throws LocalResourceError (local_prefix) if ICE
  // could not open a socket for a reason on this side, else SignalingError.
  [[noreturn]] void fail_to_start(std::unique_lock<std::mutex>& lock, const char* local_prefix,
                                  const char* peer_prefix, const std::exception& e);
  void teardown();  // deactivate callbacks, close the peer connection; never under mutex_

  const int channels_;
  const IceConfig ice_;  // to explain a socket that ICE could not open, and the candidates allowed
  std::shared_ptr<detail::SenderShared> shared_;
  std::unique_ptr<detail::SenderRtc> rtc_;
  mutable std::mutex mutex_;  // signaling calls; held only around libdatachannel signaling
                              // calls, never while waiting for a callback to finish
  Phase phase_ = Phase::Idle;        // guarded by mutex_
  std::atomic<bool> closed_{false};  // phase_ == Closed, readable without mutex_
  std::atomic<int> payload_type_{-1};
  uint32_t rtp_timestamp_ = 0;  // mixer thread only
};

// rtc::InitLogger (level from $SINKCAST_LIBDATACHANNEL_LOG: none, fatal, error
// (default), warning, info, debug, verbose; written to stderr) and
// rtc::SetThreadPoolSize(max(4, cores)) before any PeerConnection, which
// avoids the setRemoteDescription deadlock on 2-core hosts (libdatachannel
// issues 1611/1616). Idempotent, thread-safe; WebRTCSender calls it too.
void configure_libdatachannel_once();

// Throws std::invalid_argument, naming the URL and what is wrong with it,
// unless `url` is a STUN or TURN server libdatachannel can use: its own parse,
// plus what it lets through (a port outside 1-65535 wraps around; a TURN
// server without user and password fails only when a listener connects).
void validate_ice_server_url(const std::string& url);

}  // namespace sinkcast
