// The engine: a registry of sources, sinks and the routes between them, the
// clocks that drive the sinks, and (with the WebRTC layer) their listeners.
//
// Thread safety: every public method may be called from any thread. Control
// calls take the registry lock briefly; push() only looks its source up under
// a shared lock. Nothing here calls into Python.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include <unistd.h>

#include "audio/pcm_tap.h"
#include "audio/sample_format.h"
#include "audio/source.h"
#include "engine/errors.h"
#include "engine/fork_guard.h"
#include "engine/signaling_dispatcher.h"
#include "engine/sink.h"
#include "engine/task_thread.h"
#include "net/rtp_receiver.h"
#include "net/scream_receiver.h"
#include "webrtc/webrtc_sender.h"

namespace sinkcast {

struct ManagerConfig {
    bool realtime = true;
    std::string bind_address = "127.0.0.1";
    uint16_t port_range_begin = 0;
    uint16_t port_range_end = 0;
    bool ice_udp_mux = false;  // all listeners share one UDP port (see IceConfig::udp_mux)
    std::vector<std::string> ice_servers;
    // Accept remote candidates named "<uuid>.local" (browsers hide LAN addresses
    // that way; resolving them takes mDNS). Other host names are always refused.
    bool allow_mdns_candidates = true;
    // A listener session not connected this long after it opened (an offer
    // never answered, a peer gone before ICE connected) is closed with a bye.
    // Unset: never. libjuice alone gives up only on a peer whose candidates it
    // had, and an unanswered offer waits forever.
    std::optional<std::chrono::milliseconds> connect_timeout = std::chrono::seconds(30);
};

struct SourceConfig {
    int sample_rate = 48000;
    int channels = 1;
    int buffer_ms = 500;  // ring capacity: older audio is dropped (overrun) beyond this
    int jitter_ms = 20;   // real time only: audio queued before a route starts/restarts playing
};

struct SourceStats {
    std::string id;
    std::string kind;
    int sample_rate = 0;
    int channels = 0;
    SourceCounters counters;
    std::vector<std::string> sinks;
    std::optional<NetInputStats> network;  // network inputs (rtp, scream) only
};

struct ListenerStats {
    std::string target;  // "sink" (the default session) or "sink/listener"
    SenderStats sender;
};

struct SinkStats {
    std::string id;
    SinkConfig config;
    SinkClockStats clock;
    MixerStats mixer;
    StreamerStats streamer;
    size_t taps = 0;
    std::vector<ListenerStats> listeners;
};

struct EngineStats {
    bool realtime = true;
    bool closed = false;
    std::vector<SinkStats> sinks;
    std::vector<SourceStats> sources;
    size_t listeners = 0;        // sessions open in this engine
    uint64_t live_senders = 0;   // WebRTC peers alive in the process (all engines)
    size_t signaling_backlog = 0;  // messages waiting for the signaling callback
};

class AudioManager {
public:
    explicit AudioManager(ManagerConfig config = {});
    virtual ~AudioManager();
    AudioManager(const AudioManager&) = delete;
    AudioManager& operator=(const AudioManager&) = delete;

    const ManagerConfig& config() const { return config_; }
    bool realtime() const { return config_.realtime; }

    void add_sink(const std::string& id, const SinkConfig& config);
    void remove_sink(const std::string& id);
    void set_sink_volume(const std::string& id, double volume);
    std::vector<std::string> sink_ids() const;

    void add_source(const std::string& id, const SourceConfig& config);
    void add_tone_source(const std::string& id, double frequency_hz, double amplitude);
    void add_noise_source(const std::string& id, double amplitude, uint64_t seed);
    void remove_source(const std::string& id);
    // Network inputs (cpp/net): bind a UDP socket and start a receive thread.
    // Return the bound port (the ephemeral one when port 0 was asked for).
    int add_rtp_source(const std::string& id, const RtpInputConfig& config);
    int add_scream_source(const std::string& id, const ScreamInputConfig& config);
    std::vector<std::string> source_ids() const;

    void connect(const std::string& source_id, const std::string& sink_id, double gain);
    void disconnect(const std::string& source_id, const std::string& sink_id);
    void set_gain(const std::string& source_id, const std::string& sink_id, double gain);

    // Throws std::invalid_argument for a wrong channel count or non-finite samples,
    // before anything is queued. `samples` = frames * channels.
    // serial: when given, the Source::serial() the caller started feeding. If the id
    // now names another source (removed and added again), UnknownIdError and nothing
    // is queued: a feeder thread checking source_serial() first could still race.
    void push(const std::string& source_id, const void* data, SampleFormat format, size_t frames, int channels,
              std::optional<uint64_t> serial = std::nullopt);
    // The same for 1-D interleaved samples: the source's channel count splits them into frames.
    void push_interleaved(const std::string& source_id, const void* data, SampleFormat format, size_t samples,
                          std::optional<uint64_t> serial = std::nullopt);
    // PushSource::flush(): play out everything pushed so far (the end of a clip).
    void flush(const std::string& source_id, std::optional<uint64_t> serial = std::nullopt);
    int source_channels(const std::string& source_id) const;
    uint64_t source_serial(const std::string& source_id) const;  // see Source::serial()

    // Manual clock only (realtime=false): the sink to render, after the checks
    // (open, manual clock, known id). Its render() mixes the next frames.
    // With wait=false it returns null instead of waiting when the registry is
    // being changed, so a caller holding the GIL can release it only then.
    std::shared_ptr<Sink> manual_sink(const std::string& sink_id, bool wait = true) const;

    std::shared_ptr<PcmTap> open_tap(const std::string& sink_id, double seconds);

    EngineStats stats() const;

    // ---- WebRTC signaling (DESIGN.md, "Signaling contract") ----

    // The receiver of outgoing messages, called on the engine's dispatcher
    // thread. Once this returns, the previous handler is never called again
    // (unless this is called from inside the handler itself). nullptr clears.
    void set_signaling_handler(std::shared_ptr<SignalingHandler> handler);

    // Calls f(handler) with the handler held now (nullptr if none), under the
    // lock that guards it, so that it cannot be swapped or freed meanwhile. f
    // must neither block nor set a handler. For the Python bindings' support of
    // the cycle collector.
    template <typename F>
    void with_signaling_handler(F&& f) const {
        std::lock_guard<std::mutex> lock(handler_slot_->mutex);
        f(handler_slot_->handler.get());
    }

    // Routes one incoming message to its session. Throws UnknownIdError for an
    // unknown sink and SignalingError for anything malformed, unsupported,
    // oversized or out of state; then nothing has changed.
    void handle_incoming_signaling(const std::string& target, const std::string& type, const std::string& message);

    std::vector<std::string> listener_targets() const;

    // Stops every clock and releases every sink and source. Idempotent; after
    // it returns no engine thread runs, also when another thread's shutdown()
    // was under way (this one then waits for it). Other calls then throw
    // EngineClosedError. From inside a callback it returns at once when another
    // thread is shutting down: that shutdown ends once the callback returns.
    void shutdown() { shutdown_impl(true); }
    // shutdown() for the cycle collector, once the engine is garbage and its
    // callback let go: the collecting thread may hold a lock that a callback
    // already running waits for. So what is still queued is dropped (it would
    // reach no callback anyway), and a delivery in progress is not waited for:
    // it ends on its own after this returns. The rest is as shutdown().
    void shutdown_without_waiting_for_callback() { shutdown_impl(false); }
    // True from the moment shutdown() begins, and in a child of fork() when the
    // engine was made before it (engine/fork_guard.h): it is never usable there.
    bool closed() const { return closed_.load(std::memory_order_acquire) || made_before_fork(); }
    // True once a shutdown() has run to its end.
    bool shutdown_finished() const { return shutdown_finished_.load(std::memory_order_acquire); }

    // Every live manager, for the interpreter-exit hook.
    static std::vector<AudioManager*> live_managers();

protected:
    void ensure_open() const;

private:
    void shutdown_impl(bool wait_for_callback);
    bool made_before_fork() const { return fork_generation_ != fork_generation(); }
    [[noreturn]] void throw_made_before_fork() const;
    void abandon_after_fork();

    std::shared_ptr<Sink> find_sink_locked(const std::string& id) const;
    std::shared_ptr<Source> find_source_locked(const std::string& id) const;
    // With a serial: that very source, or UnknownIdError if the id now names another.
    std::shared_ptr<Source> find_source(const std::string& id, std::optional<uint64_t> serial = std::nullopt) const;
    void push_into(const std::string& source_id, Source& source, const void* data, SampleFormat format,
                   size_t frames, int channels);
    void add_source_object(const std::string& id, std::shared_ptr<Source> source);

    ManagerConfig config_;
    const uint64_t fork_generation_ = fork_generation();
    const pid_t creator_pid_ = getpid();
    std::atomic<bool> abandoned_{false};  // in a child of fork(): see abandon_after_fork()
    std::atomic<bool> closed_{false};
    std::atomic<bool> shutdown_finished_{false};
    mutable std::shared_mutex registry_mutex_;
    std::map<std::string, std::shared_ptr<Sink>> sinks_;
    std::map<std::string, std::shared_ptr<Source>> sources_;
    std::mutex shutdown_mutex_;

    // ---- signaling state (audio_manager_signaling.cpp) ----
    struct Session {
        std::string sink_id;
        std::shared_ptr<Sink> sink;
        std::shared_ptr<WebRTCSender> sender;
        // Also the session's identity: a new session on the same target gets a
        // new one, and the sender's callbacks keep theirs alive, so its address
        // is never reused while a callback can still name it.
        std::shared_ptr<SessionLife> life;
    };
    void start_session_locked(const std::string& target, const std::shared_ptr<Sink>& sink, const std::string& sink_id,
                              const std::function<void(WebRTCSender&)>& start);
    std::shared_ptr<WebRTCSender> new_sender(const std::string& target, const std::shared_ptr<Sink>& sink,
                                             const std::shared_ptr<SessionLife>& life);
    void close_session_locked(std::string target, bool send_bye, const std::string& reason);
    void close_sessions_of_sink_locked(const std::string& sink_id);
    void reap_session(const std::string& target, const std::shared_ptr<SessionLife>& life, const std::string& reason);
    // connect_timeout's check, on tasks_: closes the session if it is still there and not connected.
    void reap_if_not_connected(const std::string& target, const std::shared_ptr<SessionLife>& life);
    void supersede_target_locked(const std::string& target);
    IceConfig ice_config() const;

    std::unique_ptr<SignalingDispatcher> dispatcher_;
    // Reaping, apart from the dispatcher: a slow callback must not keep dead listeners listed.
    std::unique_ptr<TaskThread> tasks_;
    // Serializes signaling (incoming messages, reaping, sink removal) and guards sessions_.
    // Lock order: signaling_mutex_, then registry_mutex_.
    mutable std::mutex signaling_mutex_;
    std::map<std::string, Session> sessions_;
    // Sessions the engine closed (its bye may still be queued), by target, until
    // a new session takes the target: that bye is then stale. Expired entries
    // are swept when the map has doubled since the last sweep.
    std::map<std::string, std::weak_ptr<SessionLife>> closed_sessions_;
    size_t closed_sessions_swept_size_ = 0;

    // The application's handler and its in-flight bookkeeping. Shared with the
    // dispatcher thread, which never touches the engine itself while delivering:
    // a callback may drop the last reference to the engine.
    struct HandlerSlot {
        std::mutex mutex;
        std::condition_variable idle;
        std::shared_ptr<SignalingHandler> handler;
        uint64_t generation = 0;
        bool in_flight = false;
        uint64_t in_flight_generation = 0;
    };
    static void deliver_via(const std::shared_ptr<HandlerSlot>& slot, const SignalingMessage& message);
    std::shared_ptr<HandlerSlot> handler_slot_ = std::make_shared<HandlerSlot>();
};

// WebRTC peers alive in the process, across all engines (for leak checks).
uint64_t live_sender_count();

// Checks an id for sinks and sources: 1-128 printable characters, no '/'.
void validate_id(const std::string& kind, const std::string& id);

}  // namespace sinkcast
