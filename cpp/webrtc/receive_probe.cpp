#include "webrtc/receive_probe.h"

#include <rtc/rtc.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>

#include "engine/fork_guard.h"
#include "webrtc/signaling_message.h"
#include "webrtc/webrtc_sender.h"

namespace sinkcast {

namespace {

// libdatachannel's RTCP session answers each sender report with a receiver
// report. The sender's side of the DTLS handshake finishes first, so its first
// report can arrive before this track is open; answering it then fails, and
// libdatachannel logs a warning for each (dozens when a benchmark connects a
// hundred probes). Reports are answered from the track's opening on.
class ProbeRtcpSession final : public rtc::RtcpReceivingSession {
public:
    void incoming(rtc::message_vector& messages, const rtc::message_callback& send) override {
        rtc::RtcpReceivingSession::incoming(messages, [this, &send](rtc::message_ptr message) {
            if (open.load(std::memory_order_acquire)) send(std::move(message));
        });
    }
    std::atomic<bool> open{false};
};

}  // namespace

struct ReceiveProbe::State {
    std::mutex mutex;
    std::condition_variable gathered;
    bool gathering_done = false;
    bool is_connected = false;
    uint64_t packets = 0;
    uint64_t bytes = 0;
    std::vector<ProbePacket> recent;
    std::shared_ptr<rtc::PeerConnection> pc;
    std::shared_ptr<rtc::Track> track;
};

ReceiveProbe::ReceiveProbe(const std::string& bind_address)
    : state_(std::make_shared<State>()), fork_generation_(fork_generation()) {
    configure_libdatachannel_once();
    rtc::Configuration config;
    if (!bind_address.empty()) config.bindAddress = bind_address;
    state_->pc = std::make_shared<rtc::PeerConnection>(config);
    std::weak_ptr<State> weak = state_;
    state_->pc->onGatheringStateChange([weak](rtc::PeerConnection::GatheringState s) {
        auto st = weak.lock();
        if (!st || s != rtc::PeerConnection::GatheringState::Complete) return;
        {
            std::lock_guard<std::mutex> lock(st->mutex);
            st->gathering_done = true;
        }
        st->gathered.notify_all();
    });
    state_->pc->onStateChange([weak](rtc::PeerConnection::State s) {
        if (auto st = weak.lock()) {
            std::lock_guard<std::mutex> lock(st->mutex);
            st->is_connected = s == rtc::PeerConnection::State::Connected;
        }
    });
    rtc::Description::Audio media("0", rtc::Description::Direction::RecvOnly);
    media.addOpusCodec(111);
    state_->track = state_->pc->addTrack(media);
    auto rtcp = std::make_shared<ProbeRtcpSession>();
    state_->track->setMediaHandler(rtcp);
    state_->track->onOpen([rtcp] { rtcp->open.store(true, std::memory_order_release); });
    state_->track->onMessage(
        [weak](rtc::binary data) {
            auto st = weak.lock();
            if (!st) return;
            auto now = std::chrono::steady_clock::now().time_since_epoch();
            std::lock_guard<std::mutex> lock(st->mutex);
            st->packets += 1;
            st->bytes += data.size();
            if (st->recent.size() < 100000)
                st->recent.push_back({std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(),
                                      static_cast<uint32_t>(data.size())});
        },
        nullptr);
}

ReceiveProbe::~ReceiveProbe() { close(); }

std::shared_ptr<rtc::PeerConnection> ReceiveProbe::peer() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (!state_->pc) throw std::runtime_error("the probe is closed");
    return state_->pc;
}

std::string ReceiveProbe::create_offer(double timeout_s) {
    auto pc = peer();
    pc->setLocalDescription(rtc::Description::Type::Offer);
    std::unique_lock<std::mutex> lock(state_->mutex);
    state_->gathered.wait_for(lock, std::chrono::duration<double>(timeout_s), [this] { return state_->gathering_done; });
    lock.unlock();
    auto local = pc->localDescription();
    if (!local) throw std::runtime_error("probe has no local description");
    return std::string(*local);
}

void ReceiveProbe::accept_answer(const std::string& sdp) {
    auto pc = peer();
    try {
        pc->setRemoteDescription(rtc::Description(sdp, rtc::Description::Type::Answer));
    } catch (const std::exception& e) {
        throw SignalingError(std::string("probe could not apply the answer: ") + e.what());
    }
}

uint64_t ReceiveProbe::packets() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->packets;
}

uint64_t ReceiveProbe::bytes() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->bytes;
}

bool ReceiveProbe::connected() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->is_connected;
}

std::vector<ProbePacket> ReceiveProbe::take_packets() {
    std::lock_guard<std::mutex> lock(state_->mutex);
    std::vector<ProbePacket> out;
    out.swap(state_->recent);
    return out;
}

void ReceiveProbe::close() {
    if (fork_generation_ != fork_generation()) {
        // In a child of fork(): closing would wait for libdatachannel's threads,
        // which run only in the parent. The state is kept, never destroyed.
        new std::shared_ptr<State>(state_);
        return;
    }
    std::shared_ptr<rtc::PeerConnection> pc;
    std::shared_ptr<rtc::Track> track;
    {
        std::lock_guard<std::mutex> lock(state_->mutex);
        pc = std::move(state_->pc);
        track = std::move(state_->track);
    }
    // Both outside the lock: destroying the track waits for a running onMessage
    // callback, and that callback takes the lock (DESIGN.md's rule for blocking
    // libdatachannel calls). Doing it under the lock deadlocked with packets flowing.
    track.reset();
    if (pc) pc->close();
}

}  // namespace sinkcast
