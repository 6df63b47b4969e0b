// Signaling message parsing and validation (pure functions: no network, no
// libdatachannel threads; rtc::Description / rtc::Candidate are used only as
// parsers). Every rejection is a SignalingError carrying a human reason.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace rtc {
class Candidate;
}

namespace sinkcast {

// Malformed, unsupported, oversized or out-of-state signaling input.
// The engine maps it to Python's sinkcast.SignalingError (a ValueError).
class SignalingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A listener could not be opened for a reason on this side, not the peer's:
// no file descriptor, no free port of the range, a bind address this host
// no longer has (Python:
// sinkcast.LocalResourceError, a SignalingError). The same message may
// succeed later; a server answers it with 503, not 400.
class LocalResourceError : public SignalingError {
 public:
  using SignalingError::SignalingError;
};

// Any incoming signaling message larger than this is rejected.
inline constexpr size_t kMaxSignalingMessageBytes = 64 * 1024;

struct ParsedCandidate {
  std::string candidate;           // "candidate:..." (never with "a="); empty at end of candidates
  std::string mid;                 // sdpMid, empty when not given
  bool end_of_candidates = false;  // {"candidate": ""}, null, "" or "a=end-of-candidates"
  int mline_index = -1;            // sdpMLineIndex, -1 when not given
};

// Accepts the JSON of a browser's RTCIceCandidate ({"candidate", "sdpMid",
// "sdpMLineIndex", "usernameFragment"}), JSON null, or a bare
// "candidate:..." / "a=candidate:..." line. Throws SignalingError.
ParsedCandidate parse_candidate_message(const std::string& message);

// What JSON.stringify(event.candidate) gives in a browser:
// {"candidate":"candidate:...","sdpMid":"0","sdpMLineIndex":0}
// (plus "usernameFragment" when ufrag is not empty). A candidate without the
// "candidate:" prefix gets it; an empty candidate means end of candidates.
std::string candidate_to_json(const std::string& candidate, const std::string& mid);
std::string candidate_to_json(const std::string& candidate, const std::string& mid,
                              int mline_index, const std::string& ufrag = std::string());

// What an offer says of the ICE transport of the audio section we answer.
// Sections share it when they are in the audio's BUNDLE group on the same
// port (a max-bundle offer, or a trickle offer's placeholder port); a section
// on a port of its own (aiortc's default) has a transport of its own, which
// the answer rejects with the section.
struct AudioTransport {
  std::string ice_ufrag;                // the audio section's own, or empty
  std::string ice_pwd;
  std::vector<std::string> candidates;  // "candidate:..." lines of the sharing sections
  std::vector<std::string> separate_mids;  // the sections with a transport of their own
  std::vector<int> separate_mline_indexes;
  // Whether a trickled candidate naming this section (by sdpMid, else
  // sdpMLineIndex) belongs to the audio's transport: all but those of the
  // separate sections do (one naming no known section too, as before).
  bool shares(const std::string& mid, int mline_index) const;
};

struct OfferAudioInfo {
  std::string mid;            // the audio m-line's mid
  int opus_payload_type = -1; // the first Opus/48000 payload type of that m-line
  int mline_index = -1;       // index of the audio m-line in the SDP
  bool stereo = false;        // the Opus fmtp carries stereo=1
  bool nack = false;          // offers only: a=rtcp-fb:<opus pt> nack, the peer asks for lost packets again
  AudioTransport transport;   // offers only
};

// Validates a remote offer for a listener session: an SDP document with ICE
// credentials, a DTLS fingerprint, and a non-rejected DTLS-SRTP audio m-line
// able to receive (recvonly/sendrecv) that offers Opus/48000. Returns the first
// such audio m-line. Throws SignalingError ("offer has no audio m-line",
// "offer does not offer Opus", "malformed SDP: ...", ...).
OfferAudioInfo inspect_remote_offer(const std::string& sdp);

// Validates the listener's answer to an engine offer whose audio m-line had
// mid `expected_mid`: it must accept that m-line (port != 0), be able to
// receive, and accept Opus/48000 (the returned payload type is the one the
// answer lists, which the sender then uses). Throws SignalingError.
OfferAudioInfo inspect_remote_answer(const std::string& sdp, const std::string& expected_mid);

// A remote ICE candidate must name its address as an IP literal, or as an
// mDNS name ending in ".local" when allow_mdns is true. Anything else would
// make libdatachannel resolve a name chosen by an untrusted peer through DNS.
// Checked on libdatachannel's parse of the candidate, the one it would act on.
// Throws SignalingError naming the address.
void check_candidate_address(const rtc::Candidate& candidate, bool allow_mdns);

// libdatachannel's parse of a trickled candidate (not end of candidates);
// throws SignalingError("malformed candidate: ...").
rtc::Candidate make_remote_candidate(const ParsedCandidate& parsed);

// Why a session would refuse this candidate message, found without a session
// ("" if it would take it): parse_candidate_message, make_remote_candidate and
// check_candidate_address, as a trickled candidate goes through them. For a
// caller that must check several candidates before it applies any.
std::string candidate_problem(const std::string& message, bool allow_mdns);

}  // namespace sinkcast
