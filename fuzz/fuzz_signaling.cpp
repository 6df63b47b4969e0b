// libFuzzer target: the C++ path of handle_incoming_webrtc_signaling_message.
//
// Input layout: byte 0 picks the message type, byte 1 the target, the rest is
// the message. One engine (manual clock, one sink) lives for the whole run, so
// sessions opened by valid offers persist and later inputs meet them in every
// state. The only acceptable outcomes are success, SignalingError and
// UnknownIdError; anything else (another exception, a crash, a sanitizer
// report, a leak) is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>

#include "engine/audio_manager.h"
#include "webrtc/signaling_message.h"

namespace {

sinkcast::AudioManager& engine() {
    static sinkcast::AudioManager* eng = [] {
        sinkcast::ManagerConfig config;
        config.realtime = false;
        config.bind_address = "127.0.0.1";
        config.allow_mdns_candidates = false;  // no name resolution at all while fuzzing
        auto* e = new sinkcast::AudioManager(config);
        e->add_sink("s", sinkcast::SinkConfig{});
        return e;
    }();
    return *eng;
}

const char* const kTypes[] = {"offer", "answer", "candidate", "bye", "request_offer", "hello", ""};
const char* const kTargets[] = {"s", "s/a", "s/b", "nope", "", "s/", "/x", "s/a/b"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    std::string type = kTypes[data[0] % (sizeof(kTypes) / sizeof(kTypes[0]))];
    std::string target = kTargets[data[1] % (sizeof(kTargets) / sizeof(kTargets[0]))];
    std::string message(reinterpret_cast<const char*>(data + 2), size - 2);
    try {
        engine().handle_incoming_signaling(target, type, message);
    } catch (const sinkcast::SignalingError&) {
    } catch (const sinkcast::UnknownIdError&) {
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unexpected exception from handle_incoming_signaling: %s\n", e.what());
        std::abort();
    }
    // The parsers on their own, with the raw message.
    try {
        sinkcast::parse_candidate_message(message);
    } catch (const sinkcast::SignalingError&) {
    }
    try {
        sinkcast::inspect_remote_offer(message);
    } catch (const sinkcast::SignalingError&) {
    }
    try {
        sinkcast::inspect_remote_answer(message, "0");
    } catch (const sinkcast::SignalingError&) {
    }
    // The server's check of a candidate before it sends it: it reports, never throws.
    try {
        (void)sinkcast::candidate_problem(message, false);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unexpected exception from candidate_problem: %s\n", e.what());
        std::abort();
    }
    return 0;
}
