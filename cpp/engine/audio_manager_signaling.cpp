// The signaling half of AudioManager: sessions (one WebRTCSender each) keyed
// by target, the routing of incoming messages, and the delivery of outgoing
// ones through the dispatcher to the application's handler.
#include <atomic>

#include "engine/audio_manager.h"
#include "webrtc/signaling_message.h"

namespace sinkcast {

namespace {

std::atomic<uint64_t> g_live_senders{0};

struct ParsedTarget {
    std::string sink_id;
    std::string listener_id;  // empty: the sink's default session
};

ParsedTarget parse_target(const std::string& target) {
    if (target.empty()) throw SignalingError("empty target: expected '<sink_id>' or '<sink_id>/<listener_id>'");
    if (target.size() > 256) throw SignalingError("target is longer than 256 characters");
    for (unsigned char c : target)
        if (c < 0x20 || c == 0x7f) throw SignalingError("target contains control characters");
    ParsedTarget t;
    auto slash = target.find('/');
    if (slash == std::string::npos) {
        t.sink_id = target;
        return t;
    }
    t.sink_id = target.substr(0, slash);
    t.listener_id = target.substr(slash + 1);
    if (t.sink_id.empty()) throw SignalingError("target '" + target + "' has an empty sink id");
    if (t.listener_id.empty()) throw SignalingError("target '" + target + "' has an empty listener id after '/'");
    return t;
}

bool is_known_type(const std::string& type) {
    return type == "offer" || type == "answer" || type == "candidate" || type == "bye" || type == "request_offer";
}

}  // namespace

uint64_t live_sender_count() { return g_live_senders.load(std::memory_order_relaxed); }

IceConfig AudioManager::ice_config() const {
    IceConfig ice;
    ice.bind_address = config_.bind_address;
    ice.port_range_begin = config_.port_range_begin;
    ice.port_range_end = config_.port_range_end;
    ice.udp_mux = config_.ice_udp_mux;
    ice.ice_servers = config_.ice_servers;
    ice.allow_mdns_candidates = config_.allow_mdns_candidates;
    return ice;
}

void AudioManager::set_signaling_handler(std::shared_ptr<SignalingHandler> handler) {
    std::shared_ptr<SignalingHandler> old;
    HandlerSlot& slot = *handler_slot_;
    {
        std::unique_lock<std::mutex> lock(slot.mutex);
        old = std::move(slot.handler);
        slot.handler = std::move(handler);
        ++slot.generation;
        // Wait out a delivery still running with the old handler, so it never
        // runs after we return -- unless we are that delivery.
        if (!dispatcher_->on_dispatcher_thread()) {
            slot.idle.wait(lock, [&slot] { return !slot.in_flight || slot.in_flight_generation == slot.generation; });
        }
    }
    // `old` is released here, with no engine lock held.
}

void AudioManager::deliver_via(const std::shared_ptr<HandlerSlot>& slot_ref, const SignalingMessage& message) {
    // A closed or replaced session's leftovers. The dispatcher is one thread and
    // first in, first out, so whatever of an old session is delivered at all
    // reaches the application before anything of the session that replaced it.
    // (The Python trampoline checks again once it holds the GIL.)
    if (message.session) message.session->wait_until_settled();
    if (message.stale()) return;
    std::shared_ptr<HandlerSlot> slot = slot_ref;  // keeps the slot alive even if the engine goes away
    std::shared_ptr<SignalingHandler> handler;
    {
        std::lock_guard<std::mutex> lock(slot->mutex);
        handler = slot->handler;
        slot->in_flight = true;
        slot->in_flight_generation = slot->generation;
    }
    if (handler) handler->deliver(message);  // the handler never throws (the trampoline catches)
    {
        std::lock_guard<std::mutex> lock(slot->mutex);
        slot->in_flight = false;
    }
    slot->idle.notify_all();
}

// A new session on `target` replaces whatever is there, but only once `start`
// (answering or offering) has succeeded. Until then what is there is on hold
// (its messages wait at the dispatcher); if `start` fails it carries on as if
// nothing had happened. No half-made session is left behind either, and
// nothing the failed one sent reaches the application.
void AudioManager::start_session_locked(const std::string& target, const std::shared_ptr<Sink>& sink,
                                        const std::string& sink_id,
                                        const std::function<void(WebRTCSender&)>& start) {
    // Allocated before anything is put on hold: nothing between hold() and the
    // try below may throw, or a held session would wait forever.
    auto life = std::make_shared<SessionLife>();  // Opening: its messages wait for the outcome
    std::vector<std::pair<std::shared_ptr<SessionLife>, SessionLife::State>> held;
    held.reserve(2);
    if (auto it = sessions_.find(target); it != sessions_.end())
        held.emplace_back(it->second.life, it->second.life->hold());
    if (auto it = closed_sessions_.find(target); it != closed_sessions_.end())
        if (auto closed = it->second.lock()) held.emplace_back(closed, closed->hold());

    std::shared_ptr<WebRTCSender> sender;
    bool replaced = false;
    try {
        sender = new_sender(target, sink, life);
        start(*sender);
        sink->streamer().add_listener(sender);
        replaced = true;
        supersede_target_locked(target);  // settles what was held: Superseded
        sessions_[target] = Session{sink_id, sink, sender, life};
    } catch (...) {
        // Settled first, so that nothing, not even a failing close, can leave
        // the dispatcher waiting on it.
        life->settle(SessionLife::Superseded);
        if (!replaced)
            for (auto& [old, state] : held) old->settle(state);
        if (sender) {
            sink->streamer().remove_listener(sender.get());
            sender->close();
        }
        throw;
    }
    life->settle(SessionLife::Open);
    if (config_.connect_timeout)
        tasks_->post_at(TaskThread::Clock::now() + *config_.connect_timeout,
                        [this, target, life] { reap_if_not_connected(target, life); });
}

std::shared_ptr<WebRTCSender> AudioManager::new_sender(const std::string& target, const std::shared_ptr<Sink>& sink,
                                                       const std::shared_ptr<SessionLife>& life) {
    claim_webrtc_for_this_process();
    SenderCallbacks callbacks;
    SignalingDispatcher* dispatcher = dispatcher_.get();
    callbacks.on_signal = [dispatcher, target, life](const std::string& type, const std::string& message) {
        dispatcher->post({target, type, message, life});
    };
    TaskThread* tasks = tasks_.get();
    callbacks.on_closed = [this, tasks, target, life](const std::string& reason) {
        // Reaped on the task thread: closing a peer from one of its own callbacks could deadlock.
        tasks->post([this, target, life, reason] { reap_session(target, life, reason); });
    };
    callbacks.on_gathering_complete = [dispatcher, target, life](const std::string&, const std::string&,
                                                                 const std::string& mid, int mline_index) {
        // End of candidates, as a browser signals it: an empty candidate for the
        // audio section (not the offer's first one, which may be a refused video).
        dispatcher->post({target, "candidate", candidate_to_json("", mid, mline_index), life});
    };
    std::shared_ptr<WebRTCSender> sender(new WebRTCSender(ice_config(), sink->config().channels, std::move(callbacks)),
                                         [](WebRTCSender* s) {
                                             delete s;
                                             g_live_senders.fetch_sub(1, std::memory_order_relaxed);
                                         });
    g_live_senders.fetch_add(1, std::memory_order_relaxed);
    return sender;
}

// `target` by value: callers pass keys of sessions_, which the erase below destroys.
void AudioManager::close_session_locked(std::string target, bool send_bye, const std::string& reason) {
    auto it = sessions_.find(target);
    if (it == sessions_.end()) return;
    Session session = std::move(it->second);
    sessions_.erase(it);
    // Before close(): what the session still has queued, or sends while closing, is judged by this.
    session.life->settle(send_bye ? SessionLife::Closed : SessionLife::Superseded);
    session.sink->streamer().remove_listener(session.sender.get());
    // Blocking, but safe here: the sender's callbacks only enqueue, they never take signaling_mutex_.
    session.sender->close();
    if (send_bye) {
        dispatcher_->post({target, "bye", reason, session.life});
        closed_sessions_[target] = session.life;
        if (closed_sessions_.size() >= 2 * closed_sessions_swept_size_ + 64) {
            std::erase_if(closed_sessions_, [](const auto& entry) { return entry.second.expired(); });
            closed_sessions_swept_size_ = closed_sessions_.size();
        }
    }
}

// The application is closing or replacing whatever is on `target`: nothing the
// old session still has queued may reach it afterwards, not even the bye of a
// session the engine closed a moment ago.
void AudioManager::supersede_target_locked(const std::string& target) {
    auto closed = closed_sessions_.find(target);
    if (closed != closed_sessions_.end()) {
        if (auto life = closed->second.lock()) life->settle(SessionLife::Superseded);
        closed_sessions_.erase(closed);
    }
    close_session_locked(target, false, "");
}

void AudioManager::close_sessions_of_sink_locked(const std::string& sink_id) {
    std::vector<std::string> targets;
    for (const auto& [target, session] : sessions_)
        if (session.sink_id == sink_id) targets.push_back(target);
    for (const auto& target : targets) close_session_locked(target, true, "sink removed");
}

void AudioManager::reap_session(const std::string& target, const std::shared_ptr<SessionLife>& life,
                                const std::string& reason) {
    std::lock_guard<std::mutex> lock(signaling_mutex_);
    auto it = sessions_.find(target);
    // A newer session may have taken the target since the peer failed: leave that one alone.
    if (it == sessions_.end() || it->second.life != life) return;
    close_session_locked(target, true, reason);
}

void AudioManager::reap_if_not_connected(const std::string& target, const std::shared_ptr<SessionLife>& life) {
    std::lock_guard<std::mutex> lock(signaling_mutex_);
    auto it = sessions_.find(target);
    if (it == sessions_.end() || it->second.life != life || it->second.sender->connected()) return;
    // Once connected, a peer that goes away is noticed by ICE (on_closed); before, nothing would.
    close_session_locked(target, true, "connect timeout");
}

void AudioManager::handle_incoming_signaling(const std::string& target, const std::string& type,
                                             const std::string& message) {
    ensure_open();
    if (!is_known_type(type))
        throw SignalingError("unknown signaling type '" + type.substr(0, 64) +
                             "' (expected offer, answer, candidate, bye or request_offer)");
    if (message.size() > kMaxSignalingMessageBytes)
        throw SignalingError("message of " + std::to_string(message.size()) + " bytes is larger than the " +
                             std::to_string(kMaxSignalingMessageBytes) + "-byte limit");
    ParsedTarget parsed = parse_target(target);

    std::lock_guard<std::mutex> lock(signaling_mutex_);
    ensure_open();
    std::shared_ptr<Sink> sink;
    {
        std::shared_lock<std::shared_mutex> registry(registry_mutex_);
        sink = find_sink_locked(parsed.sink_id);
    }
    auto session = sessions_.find(target);

    if (type == "offer") {
        // Validate before anything is torn down: a bad offer changes nothing.
        inspect_remote_offer(message);
        start_session_locked(target, sink, parsed.sink_id, [&](WebRTCSender& s) { s.accept_offer(message); });
    } else if (type == "request_offer") {
        start_session_locked(target, sink, parsed.sink_id, [](WebRTCSender& s) { s.create_offer(); });
    } else if (type == "answer") {
        if (session == sessions_.end())
            throw SignalingError("answer for '" + target +
                                 "', but no session is open there (none was opened by request_offer, or it has ended)");
        try {
            session->second.sender->accept_answer(message);
        } catch (const SignalingError&) {
            // Refused by libdatachannel once half applied, the session is dead:
            // it goes like any session the engine closes, with a bye.
            if (session->second.sender->closed()) close_session_locked(target, true, "answer rejected");
            throw;
        }
    } else if (type == "candidate") {
        if (session == sessions_.end())
            throw SignalingError("candidate for '" + target +
                                 "', but no session is open there: none was opened (a candidate before any offer), or it has ended");
        session->second.sender->add_remote_candidate(message);
    } else if (type == "bye") {
        // The listener left; closing an already-closed session is not an error.
        supersede_target_locked(target);
    }
}

std::vector<std::string> AudioManager::listener_targets() const {
    ensure_open();
    std::lock_guard<std::mutex> lock(signaling_mutex_);
    std::vector<std::string> targets;
    for (const auto& [target, session] : sessions_) targets.push_back(target);
    return targets;
}

}  // namespace sinkcast
