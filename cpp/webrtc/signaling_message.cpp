#include "signaling_message.h"

#include "net/ip_address.h"


#include <rtc/candidate.hpp>
#include <rtc/description.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <string_view>
#include <variant>
#include <vector>

namespace sinkcast {
namespace {

std::string_view trim(std::string_view s) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Keeps error messages readable when they quote user input.
std::string excerpt(std::string_view s, size_t max = 60) {
  std::string out;
  for (char c : s.substr(0, max)) {
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  }
  if (s.size() > max) out += "...";
  return out;
}

void check_size(const std::string& message, const char* what) {
  if (message.size() > kMaxSignalingMessageBytes) {
    throw SignalingError(std::string(what) + " is too large (" + std::to_string(message.size()) +
                         " bytes, limit " + std::to_string(kMaxSignalingMessageBytes) + ")");
  }
  if (message.find('\0') != std::string::npos) {
    throw SignalingError(std::string(what) + " contains a NUL byte");
  }
}

// Validates a candidate attribute value and returns it as "candidate:...".
std::string normalize_candidate(std::string_view value) {
  value = trim(value);
  if (starts_with(value, "a=")) value.remove_prefix(2);
  if (!starts_with(value, "candidate:")) {
    throw SignalingError("malformed candidate: expected \"candidate:...\", got \"" +
                         excerpt(value) + "\"");
  }
  if (value.find_first_of("\r\n") != std::string_view::npos) {
    throw SignalingError("malformed candidate: contains a line break");
  }
  try {
    rtc::Candidate parsed{std::string(value)};  // throws std::invalid_argument on bad syntax
    (void)parsed;
  } catch (const std::exception& e) {
    throw SignalingError("malformed candidate \"" + excerpt(value) + "\": " + e.what());
  }
  return std::string(value);
}

// ---- SDP -------------------------------------------------------------------

struct SdpSection {
  std::string media;  // "audio", "video", "application", ...
  std::string mid;    // a=mid, or the index as libdatachannel would assign it
  std::string port;   // the m= line's
  // What the section itself says of its ICE transport.
  std::string ice_ufrag, ice_pwd;
  std::vector<std::string> candidates;  // "candidate:..."
};

struct SdpOutline {
  std::vector<SdpSection> sections;  // in document order
  std::vector<std::vector<std::string>> bundle_groups;  // a=group:BUNDLE mids
};

// Light syntactic check (rtc::Description accepts almost anything silently),
// the m-sections and the BUNDLE groups.
SdpOutline scan_sdp(const std::string& sdp, const char* what) {
  check_size(sdp, what);
  std::string_view rest = sdp;
  SdpOutline outline;
  std::vector<SdpSection>& sections = outline.sections;
  bool first = true;
  size_t line_no = 0;
  while (!rest.empty()) {
    size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty()) continue;
    if (first) {
      if (line != "v=0") {
        throw SignalingError(std::string("malformed SDP: ") + what +
                             " is not an SDP document (expected \"v=0\" first, got \"" +
                             excerpt(line) + "\")");
      }
      first = false;
      continue;
    }
    if (line.size() < 2 || line[1] != '=' || !std::islower(static_cast<unsigned char>(line[0]))) {
      throw SignalingError("malformed SDP: line " + std::to_string(line_no) + " \"" +
                           excerpt(line) + "\" is not of the form <letter>=<value>");
    }
    if (line[0] == 'm') {
      std::string_view m = line.substr(2);
      SdpSection section;
      const size_t media_end = m.find(' ');
      section.media = std::string(m.substr(0, media_end));
      if (media_end != std::string_view::npos) {
        std::string_view after = m.substr(media_end + 1);
        section.port = std::string(after.substr(0, after.find(' ')));
      }
      section.mid = std::to_string(sections.size());
      sections.push_back(std::move(section));
    } else if (sections.empty()) {
      if (starts_with(line, "a=group:BUNDLE")) {
        std::vector<std::string> group;
        std::string_view mids = line.substr(14);
        while (!(mids = trim(mids)).empty()) {
          const size_t end = mids.find_first_of(" \t");
          group.emplace_back(mids.substr(0, end));
          mids = end == std::string_view::npos ? std::string_view() : mids.substr(end);
        }
        outline.bundle_groups.push_back(std::move(group));
      }
    } else {
      SdpSection& section = sections.back();
      if (starts_with(line, "a=mid:")) section.mid = std::string(trim(line.substr(6)));
      if (starts_with(line, "a=ice-ufrag:")) section.ice_ufrag = std::string(trim(line.substr(12)));
      if (starts_with(line, "a=ice-pwd:")) section.ice_pwd = std::string(trim(line.substr(10)));
      if (starts_with(line, "a=candidate:")) section.candidates.emplace_back(trim(line.substr(2)));
    }
  }
  if (first) throw SignalingError(std::string("malformed SDP: ") + what + " is empty");
  return outline;
}

// See AudioTransport.
AudioTransport audio_transport(const SdpOutline& outline, size_t audio) {
  const SdpSection& own = outline.sections[audio];
  const std::vector<std::string>* group = nullptr;
  for (const auto& g : outline.bundle_groups)
    if (std::find(g.begin(), g.end(), own.mid) != g.end()) group = &g;
  AudioTransport t;
  t.ice_ufrag = own.ice_ufrag;
  t.ice_pwd = own.ice_pwd;
  t.candidates = own.candidates;  // the audio's own first
  for (size_t i = 0; i < outline.sections.size(); ++i) {
    if (i == audio) continue;
    const SdpSection& s = outline.sections[i];
    const bool bundled = group && std::find(group->begin(), group->end(), s.mid) != group->end();
    if (bundled && s.port == own.port) {
      t.candidates.insert(t.candidates.end(), s.candidates.begin(), s.candidates.end());
    } else {
      t.separate_mids.push_back(s.mid);
      t.separate_mline_indexes.push_back(static_cast<int>(i));
    }
  }
  return t;
}

rtc::Description parse_description(const std::string& sdp, rtc::Description::Type type,
                                   const char* what) {
  try {
    return rtc::Description(sdp, type);
  } catch (const std::exception& e) {
    throw SignalingError(std::string("malformed SDP: ") + what + ": " + e.what());
  }
}

const char* direction_name(rtc::Description::Direction d) {
  using D = rtc::Description::Direction;
  switch (d) {
    case D::SendOnly: return "sendonly";
    case D::RecvOnly: return "recvonly";
    case D::SendRecv: return "sendrecv";
    case D::Inactive: return "inactive";
    default: return "unspecified";
  }
}

// The remote side must receive our audio: recvonly, sendrecv or no attribute (= sendrecv).
bool remote_receives(rtc::Description::Direction d) {
  using D = rtc::Description::Direction;
  return d == D::RecvOnly || d == D::SendRecv || d == D::Unknown;
}

// First Opus/48000 payload type of the m-line, in the m-line's order of preference.
std::optional<std::pair<int, bool>> find_opus(const rtc::Description::Media& media) {
  for (int pt : media.payloadTypes()) {
    if (!media.hasPayloadType(pt)) continue;
    const auto* map = media.rtpMap(pt);
    if (!iequals(map->format, "opus") || map->clockRate != 48000) continue;
    if (pt < 0 || pt > 127) continue;
    bool stereo = false;
    for (const auto& fmtp : map->fmtps) {
      std::string_view rest = fmtp;
      while (!rest.empty()) {
        size_t semi = rest.find(';');
        if (trim(rest.substr(0, semi)) == "stereo=1") stereo = true;
        rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      }
    }
    return std::make_pair(pt, stereo);
  }
  return std::nullopt;
}

bool has_generic_nack(const rtc::Description::Media& media, int payload_type) {
  const auto* map = media.rtpMap(payload_type);
  if (!map) return false;
  for (const auto& feedback : map->rtcpFbs)
    if (trim(feedback) == "nack") return true;  // not "nack pli", which is a video picture request
  return false;
}

int index_of_mid(const std::vector<SdpSection>& sections, const std::string& mid) {
  for (size_t i = 0; i < sections.size(); ++i)
    if (sections[i].mid == mid) return static_cast<int>(i);
  return -1;
}

void check_transport(const rtc::Description& d, const char* what) {
  if (!d.iceUfrag() || !d.icePwd()) {
    throw SignalingError(std::string(what) + " has no ICE credentials (a=ice-ufrag/a=ice-pwd)");
  }
  if (!d.fingerprint()) {
    throw SignalingError(std::string(what) + " has no valid DTLS fingerprint (a=fingerprint)");
  }
}

}  // namespace

// ---- candidates ---------------------------------------------------------------

ParsedCandidate parse_candidate_message(const std::string& message) {
  check_size(message, "candidate message");
  ParsedCandidate out;
  std::string_view text = trim(message);

  if (text.empty() || text == "null" || text == "a=end-of-candidates" ||
      text == "end-of-candidates") {
    out.end_of_candidates = true;
    return out;
  }

  if (text.front() != '{') {
    out.candidate = normalize_candidate(text);
    return out;
  }

  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) throw SignalingError("malformed candidate message: invalid JSON");
  if (!j.is_object()) throw SignalingError("malformed candidate message: expected a JSON object");

  auto cand = j.find("candidate");
  if (cand == j.end() || cand->is_null()) {
    out.end_of_candidates = true;
  } else if (!cand->is_string()) {
    throw SignalingError("malformed candidate message: \"candidate\" must be a string");
  } else {
    const auto& value = cand->get_ref<const std::string&>();
    if (trim(value).empty())
      out.end_of_candidates = true;
    else
      out.candidate = normalize_candidate(value);
  }

  if (auto mid = j.find("sdpMid"); mid != j.end() && !mid->is_null()) {
    if (!mid->is_string())
      throw SignalingError("malformed candidate message: \"sdpMid\" must be a string or null");
    out.mid = mid->get<std::string>();
    if (out.mid.size() > 64 || out.mid.find_first_of(" \t\r\n") != std::string::npos)
      throw SignalingError("malformed candidate message: invalid \"sdpMid\"");
  }
  if (auto idx = j.find("sdpMLineIndex"); idx != j.end() && !idx->is_null()) {
    if (!idx->is_number_integer() || idx->get<long long>() < 0 || idx->get<long long>() > 1024)
      throw SignalingError(
          "malformed candidate message: \"sdpMLineIndex\" must be a small non-negative integer");
    out.mline_index = static_cast<int>(idx->get<long long>());
  }
  return out;
}

bool AudioTransport::shares(const std::string& mid, int mline_index) const {
  if (!mid.empty()) return std::find(separate_mids.begin(), separate_mids.end(), mid) == separate_mids.end();
  return std::find(separate_mline_indexes.begin(), separate_mline_indexes.end(), mline_index) ==
         separate_mline_indexes.end();
}

std::string candidate_to_json(const std::string& candidate, const std::string& mid) {
  return candidate_to_json(candidate, mid, 0);
}

std::string candidate_to_json(const std::string& candidate, const std::string& mid,
                              int mline_index, const std::string& ufrag) {
  std::string value(trim(candidate));
  if (starts_with(value, "a=")) value.erase(0, 2);
  if (!value.empty() && !starts_with(value, "candidate:")) value.insert(0, "candidate:");
  nlohmann::ordered_json j;
  j["candidate"] = value;
  j["sdpMid"] = mid;
  j["sdpMLineIndex"] = mline_index < 0 ? 0 : mline_index;
  if (!ufrag.empty()) j["usernameFragment"] = ufrag;
  return j.dump();
}

// ---- descriptions -------------------------------------------------------------

OfferAudioInfo inspect_remote_offer(const std::string& sdp) {
  const SdpOutline outline = scan_sdp(sdp, "offer");
  const auto& sections = outline.sections;
  const rtc::Description d = parse_description(sdp, rtc::Description::Type::Offer, "offer");
  check_transport(d, "offer");

  bool saw_audio = false;
  std::string rejection;
  for (int i = 0; i < d.mediaCount(); ++i) {
    auto entry = d.media(i);
    if (!std::holds_alternative<const rtc::Description::Media*>(entry)) continue;
    const auto& media = *std::get<const rtc::Description::Media*>(entry);
    if (media.type() != "audio") continue;
    saw_audio = true;
    if (media.isRemoved()) {
      if (rejection.empty()) rejection = "offer's audio m-line is disabled (port 0)";
      continue;
    }
    if (!remote_receives(media.direction())) {
      if (rejection.empty())
        rejection = std::string("offer's audio m-line does not receive audio (direction ") +
                    direction_name(media.direction()) + ")";
      continue;
    }
    if (media.protocol().find("SAVP") == std::string::npos) {
      if (rejection.empty())
        rejection = "offer's audio m-line is not DTLS-SRTP (protocol " + media.protocol() + ")";
      continue;
    }
    auto opus = find_opus(media);
    if (!opus) {
      if (rejection.empty()) rejection = "offer does not offer Opus (no opus/48000 rtpmap)";
      continue;
    }
    OfferAudioInfo info;
    info.mid = media.mid();
    info.opus_payload_type = opus->first;
    info.stereo = opus->second;
    info.nack = has_generic_nack(media, opus->first);
    info.mline_index = index_of_mid(sections, info.mid);
    if (info.mline_index < 0) info.mline_index = i;
    if (info.mline_index < static_cast<int>(sections.size()))
      info.transport = audio_transport(outline, static_cast<size_t>(info.mline_index));
    return info;
  }
  if (!saw_audio) throw SignalingError("offer has no audio m-line");
  throw SignalingError(rejection);
}

OfferAudioInfo inspect_remote_answer(const std::string& sdp, const std::string& expected_mid) {
  const auto sections = scan_sdp(sdp, "answer").sections;
  const rtc::Description d = parse_description(sdp, rtc::Description::Type::Answer, "answer");
  check_transport(d, "answer");
  // libdatachannel refuses it too, but only once the session is half set up.
  if (d.role() == rtc::Description::Role::ActPass)
    throw SignalingError("answer must pick its DTLS role, a=setup:active or a=setup:passive (RFC 5763); "
                         "it says actpass, or nothing");

  for (int i = 0; i < d.mediaCount(); ++i) {
    auto entry = d.media(i);
    if (!std::holds_alternative<const rtc::Description::Media*>(entry)) continue;
    const auto& media = *std::get<const rtc::Description::Media*>(entry);
    if (media.mid() != expected_mid) continue;
    if (media.type() != "audio")
      throw SignalingError("answer's m-line with mid \"" + expected_mid + "\" is not audio");
    if (media.isRemoved()) throw SignalingError("answer rejected the audio m-line (port 0)");
    if (!remote_receives(media.direction()))
      throw SignalingError(std::string("answer's audio m-line does not receive audio (direction ") +
                           direction_name(media.direction()) + ")");
    auto opus = find_opus(media);
    if (!opus) throw SignalingError("answer does not accept Opus (no opus/48000 rtpmap)");
    OfferAudioInfo info;
    info.mid = media.mid();
    info.opus_payload_type = opus->first;
    info.stereo = opus->second;
    info.mline_index = index_of_mid(sections, info.mid);
    if (info.mline_index < 0) info.mline_index = i;
    return info;
  }
  throw SignalingError("answer has no audio m-line with mid \"" + expected_mid + "\"");
}

void check_candidate_address(const rtc::Candidate& candidate, bool allow_mdns) {
  // Read from libdatachannel's own rendering of its parse, which is what it
  // would resolve: "candidate:<foundation> <component> <transport> <priority>
  // <address> <port> typ ...". Whatever spelling the peer used (JSON escapes,
  // spaces, an "a=" prefix) is gone by then.
  const std::string line = candidate.candidate();
  size_t start = line.find(':') + 1;
  for (int field = 0; field < 4; ++field) start = line.find(' ', start) + 1;
  const size_t address_end = line.find(' ', start);
  const std::string address = line.substr(start, address_end - start);
  // The port is looked up as a service name unless it is a number.
  const std::string port = line.substr(address_end + 1, line.find(' ', address_end + 1) - address_end - 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535)
    throw SignalingError("candidate port '" + excerpt(port, 16) + "' is not a port number");
  const bool mdns = allow_mdns && address.size() > 6 && address.compare(address.size() - 6, 6, ".local") == 0;
  if (!is_ip_literal(address) && !mdns)
    throw SignalingError("candidate address '" + excerpt(address, 64) + "' is not an IP address" +
                         (allow_mdns ? " or an mDNS .local name" : "") +
                         " (host names are not resolved for remote peers)");
}

rtc::Candidate make_remote_candidate(const ParsedCandidate& parsed) {
  try {
    return rtc::Candidate(parsed.candidate, parsed.mid);
  } catch (const std::exception& e) {
    throw SignalingError(std::string("malformed candidate: ") + e.what());
  }
}

std::string candidate_problem(const std::string& message, bool allow_mdns) {
  try {
    const ParsedCandidate parsed = parse_candidate_message(message);
    if (!parsed.end_of_candidates) check_candidate_address(make_remote_candidate(parsed), allow_mdns);
  } catch (const SignalingError& e) {
    return e.what();
  }
  return "";
}

}  // namespace sinkcast
