#include "engine/audio_manager.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "audio/generator_sources.h"
#include "audio/push_source.h"
#include "net/ip_address.h"

namespace sinkcast {

namespace {

constexpr double kMaxGain = 10.0;  // +20 dB; beyond that it is a mistake, not a mix

std::mutex& live_mutex() {
    static std::mutex m;
    return m;
}
std::set<AudioManager*>& live_set() {
    static std::set<AudioManager*> s;
    return s;
}

void check_gain(const char* what, double value) {
    if (!std::isfinite(value) || value < 0.0 || value > kMaxGain)
        throw std::invalid_argument(std::string(what) + " must be a finite number from 0 to 10, got " +
                                    number_text(value));
}

size_t ms_to_frames(int ms) { return static_cast<size_t>(ms) * kEngineRate / 1000; }

}  // namespace

void validate_id(const std::string& kind, const std::string& id) {
    if (id.empty()) throw std::invalid_argument(kind + " id must not be empty");
    if (id.size() > 128)
        throw std::invalid_argument(kind + " id is longer than 128 bytes (" + std::to_string(id.size()) + " in UTF-8)");
    if (id.find('/') != std::string::npos)
        throw std::invalid_argument(kind + " id '" + id + "' must not contain '/' (it separates listener ids)");
    for (unsigned char c : id)
        if (c < 0x20 || c == 0x7f)
            throw std::invalid_argument(kind + " id must not contain control characters");
}

namespace {
// libjuice keeps one ICE UDP mux socket per port range for the whole process
// and hands it to any agent whose range contains its port, whatever address
// that agent asked to bind. Two engines that mux over overlapping ranges
// therefore share one socket, which is only right if they bind the same address.
bool mux_ranges_overlap(const ManagerConfig& a, const ManagerConfig& b) {
    auto first = [](const ManagerConfig& c) { return c.port_range_begin ? c.port_range_begin : 1; };
    auto last = [](const ManagerConfig& c) { return c.port_range_end ? c.port_range_end : 65535; };
    return first(a) <= last(b) && first(b) <= last(a);
}
}  // namespace

AudioManager::AudioManager(ManagerConfig config) : config_(std::move(config)) {
    if (config_.port_range_begin > config_.port_range_end)
        throw std::invalid_argument("port_range must be (first, last) with first <= last");
    // Checked here, not when the first listener's ICE fails to bind: a name
    // would be looked up (and could resolve elsewhere), and a typo would only
    // show as "Failed to gather local ICE candidates" much later.
    if (!config_.bind_address.empty() && !is_ip_literal(config_.bind_address))
        throw std::invalid_argument("bind_address must be a numeric IPv4 or IPv6 address such as 127.0.0.1, "
                                    "0.0.0.0 or ::1 (\"\" for all interfaces), got '" + config_.bind_address + "'");
    // Checked here, not when the first listener's peer connection refuses it.
    for (const auto& url : config_.ice_servers) validate_ice_server_url(url);
    std::lock_guard<std::mutex> lock(live_mutex());
    if (config_.ice_udp_mux) {
        for (const AudioManager* other : live_set()) {
            if (other->closed() || !other->config_.ice_udp_mux || !mux_ranges_overlap(config_, other->config_) ||
                other->config_.bind_address == config_.bind_address)
                continue;
            throw std::invalid_argument(
                "ice_udp_mux: another engine in this process muxes ICE on bind address '" +
                other->config_.bind_address + "' over an overlapping port range, and libjuice would give this "
                "engine its socket; use a port_range that does not overlap, or the same bind_address");
        }
    }
    // Sized before the first peer connection exists (the 2-core setRemoteDescription deadlock).
    configure_libdatachannel_once();
    dispatcher_ = std::make_unique<SignalingDispatcher>(
        [slot = handler_slot_](const SignalingMessage& m) { deliver_via(slot, m); });
    tasks_ = std::make_unique<TaskThread>("sinkcast tasks");
    live_set().insert(this);
}

AudioManager::~AudioManager() {
    shutdown();
    std::lock_guard<std::mutex> lock(live_mutex());
    live_set().erase(this);
}

std::vector<AudioManager*> AudioManager::live_managers() {
    std::lock_guard<std::mutex> lock(live_mutex());
    return {live_set().begin(), live_set().end()};
}

void AudioManager::ensure_open() const {
    if (made_before_fork()) throw_made_before_fork();
    if (closed_.load(std::memory_order_acquire)) throw EngineClosedError();
}

void AudioManager::throw_made_before_fork() const {
    throw EngineClosedError("this AudioManager was made in process " + std::to_string(creator_pid_) +
                            " before it forked this one (" + std::to_string(getpid()) +
                            "); its threads run only there, so it cannot be used here. Make the engine in the "
                            "process that uses it (with multiprocessing, the 'spawn' or 'forkserver' start method)");
}

// In a child of fork(), for an engine made before it: shutdown() and the
// destructor must neither join the engine's threads (the child does not have
// them) nor take its locks (one may have been held at the fork) nor close its
// peer connections (they wait on libdatachannel's threads). Whatever owns a
// thread or a peer is kept allocated for the life of the child instead: it is
// the child's copy of the parent's memory, and nothing in the child runs it.
// The signaling callback alone is let go: it is Python's, and often refers
// back to the engine's Python object, which would then never be freed. It is
// taken without the slot's lock, which only the parent's dispatcher takes.
void AudioManager::abandon_after_fork() {
    if (abandoned_.exchange(true)) return;
    closed_.store(true, std::memory_order_release);
    new decltype(sinks_)(std::move(sinks_));
    new decltype(sources_)(std::move(sources_));
    new decltype(sessions_)(std::move(sessions_));
    (void)dispatcher_.release();
    (void)tasks_.release();
    std::shared_ptr<SignalingHandler> callback = std::move(handler_slot_->handler);
    shutdown_finished_.store(true, std::memory_order_release);
}

std::shared_ptr<Sink> AudioManager::find_sink_locked(const std::string& id) const {
    auto it = sinks_.find(id);
    if (it == sinks_.end()) {
        ensure_open();  // a shutdown() that emptied the registry since the caller's check says so
        // A source's id where a sink's belongs: arguments swapped, most likely.
        throw UnknownIdError("sink", id, sources_.count(id) ? "'" + id + "' is a source" : "");
    }
    return it->second;
}

std::shared_ptr<Source> AudioManager::find_source_locked(const std::string& id) const {
    auto it = sources_.find(id);
    if (it == sources_.end()) {
        ensure_open();
        throw UnknownIdError("source", id, sinks_.count(id) ? "'" + id + "' is a sink" : "");
    }
    return it->second;
}

// ---- sinks ----

void AudioManager::add_sink(const std::string& id, const SinkConfig& config) {
    ensure_open();
    validate_id("sink", id);
    if (config.channels != 1 && config.channels != 2)
        throw std::invalid_argument("sink channels must be 1 or 2, got " + std::to_string(config.channels));
    if (config.frame_ms != 10 && config.frame_ms != 20)
        throw std::invalid_argument("frame_ms must be 10 or 20, got " + std::to_string(config.frame_ms));
    check_gain("volume", config.volume);
    if (config.bitrate_bps && (*config.bitrate_bps < 6000 || *config.bitrate_bps > 510000))
        throw std::invalid_argument("bitrate must be 6000 to 510000 bit/s, got " +
                                    std::to_string(*config.bitrate_bps));
    if (config.complexity < 0 || config.complexity > 10)
        throw std::invalid_argument("complexity must be 0 to 10, got " + std::to_string(config.complexity));
    std::unique_lock<std::shared_mutex> lock(registry_mutex_);
    ensure_open();
    if (sinks_.count(id)) throw DuplicateIdError("a sink named '" + id + "' already exists");
    sinks_.emplace(id, std::make_shared<Sink>(id, config, config_.realtime));
}

void AudioManager::remove_sink(const std::string& id) {
    ensure_open();
    std::shared_ptr<Sink> sink;
    {
        std::lock_guard<std::mutex> signaling(signaling_mutex_);
        {
            std::unique_lock<std::shared_mutex> lock(registry_mutex_);
            sink = find_sink_locked(id);
            sinks_.erase(id);
        }
        // Its listeners are told: each gets a bye.
        close_sessions_of_sink_locked(id);
    }
    // Outside the registry lock: joining the clock must not hold up other calls.
    sink->stop();
}

void AudioManager::set_sink_volume(const std::string& id, double volume) {
    ensure_open();
    check_gain("volume", volume);
    std::shared_lock<std::shared_mutex> lock(registry_mutex_);
    find_sink_locked(id)->mixer().set_volume(volume);
}

std::vector<std::string> AudioManager::sink_ids() const {
    ensure_open();
    std::shared_lock<std::shared_mutex> lock(registry_mutex_);
    std::vector<std::string> ids;
    for (const auto& [id, sink] : sinks_) ids.push_back(id);
    return ids;
}

// ---- sources ----

void AudioManager::add_source_object(const std::string& id, std::shared_ptr<Source> source) {
    std::unique_lock<std::shared_mutex> lock(registry_mutex_);
    ensure_open();
    if (sources_.count(id)) throw DuplicateIdError("a source named '" + id + "' already exists");
    sources_.emplace(id, std::move(source));
}

void AudioManager::add_source(const std::string& id, const SourceConfig& config) {
    ensure_open();
    validate_id("source", id);
    if (config.sample_rate < 8000 || config.sample_rate > 192000)
        throw std::invalid_argument("sample_rate must be 8000 to 192000 Hz, got " +
                                    std::to_string(config.sample_rate));
    if (config.channels < 1 || config.channels > kMaxSourceChannels)
        throw std::invalid_argument("source channels must be 1 to 8, got " + std::to_string(config.channels));
    if (config.buffer_ms < 20 || config.buffer_ms > 60000)
        throw std::invalid_argument("buffer_ms must be 20 to 60000, got " + std::to_string(config.buffer_ms));
    if (config.jitter_ms < 0 || config.jitter_ms >= config.buffer_ms)
        throw std::invalid_argument("jitter_ms must be from 0 to less than buffer_ms (" +
                                    std::to_string(config.buffer_ms) + "), got " + std::to_string(config.jitter_ms));
    {
        std::shared_lock<std::shared_mutex> lock(registry_mutex_);
        if (sources_.count(id)) throw DuplicateIdError("a source named '" + id + "' already exists");
    }
    // The manual clock is deterministic: render() plays whatever has been pushed.
    size_t prebuffer = config_.realtime ? ms_to_frames(config.jitter_ms) : 0;
    add_source_object(id, std::make_shared<PushSource>(config.sample_rate, config.channels,
                                                       ms_to_frames(config.buffer_ms), prebuffer));
}

void AudioManager::add_tone_source(const std::string& id, double frequency_hz, double amplitude) {
    ensure_open();
    validate_id("source", id);
    if (!std::isfinite(frequency_hz) || frequency_hz <= 0.0 || frequency_hz >= kEngineRate / 2.0)
        throw std::invalid_argument("frequency_hz must be above 0 and below 24000, got " +
                                    number_text(frequency_hz));
    if (!std::isfinite(amplitude) || amplitude < 0.0 || amplitude > 1.0)
        throw std::invalid_argument("amplitude must be from 0 to 1, got " + number_text(amplitude));
    add_source_object(id, std::make_shared<ToneSource>(frequency_hz, amplitude));
}

void AudioManager::add_noise_source(const std::string& id, double amplitude, uint64_t seed) {
    ensure_open();
    validate_id("source", id);
    if (!std::isfinite(amplitude) || amplitude < 0.0 || amplitude > 1.0)
        throw std::invalid_argument("amplitude must be from 0 to 1, got " + number_text(amplitude));
    add_source_object(id, std::make_shared<NoiseSource>(amplitude, seed));
}

void AudioManager::remove_source(const std::string& id) {
    ensure_open();
    std::shared_ptr<Source> removed;
    {
        std::unique_lock<std::shared_mutex> lock(registry_mutex_);
        removed = find_source_locked(id);
        for (auto& [sink_id, sink] : sinks_) sink->mixer().remove_route(id);
        sources_.erase(id);
    }
    // A network input's receive thread is joined with no engine lock held.
    if (auto* net = dynamic_cast<NetInput*>(removed.get())) net->stop();
}

int AudioManager::add_rtp_source(const std::string& id, const RtpInputConfig& config) {
    ensure_open();
    validate_id("source", id);
    {
        std::shared_lock<std::shared_mutex> lock(registry_mutex_);
        if (sources_.count(id)) throw DuplicateIdError("a source named '" + id + "' already exists");
    }
    auto input = std::make_shared<RtpInput>(config, config_.realtime);
    input->start();
    int port = input->port();
    add_source_object(id, input);  // on failure the input is destroyed: its thread is joined
    return port;
}

int AudioManager::add_scream_source(const std::string& id, const ScreamInputConfig& config) {
    ensure_open();
    validate_id("source", id);
    {
        std::shared_lock<std::shared_mutex> lock(registry_mutex_);
        if (sources_.count(id)) throw DuplicateIdError("a source named '" + id + "' already exists");
    }
    auto input = std::make_shared<ScreamInput>(config, config_.realtime);
    input->start();
    int port = input->port();
    add_source_object(id, input);
    return port;
}

std::vector<std::string> AudioManager::source_ids() const {
    ensure_open();
    std::shared_lock<std::shared_mutex> lock(registry_mutex_);
    std::vector<std::string> ids;
    for (const auto& [id, source] : sources_) ids.push_back(id);
    return ids;
}

int AudioManager::source_channels(const std::string& source_id) const {
    ensure_open();
    std::shared_lock<std::shared_mutex> lock(registry_mutex_);
    return find_source_locked(source_id)->channels();
}

uint64_t AudioManager::source_serial(const std::string& source_id) const {
    ensure_open();
    std::shared_lock<std::shared_mutex> lock(registry_mutex_);
    return find_source_locked(source_id)->serial();
}

// ---- routes ----

void AudioManager::connect(const std::string& source_id, const std::string& sink_id, double gain) {
    ensure_open();
    check_gain("gain", gain);
    std::unique_lock<std::shared_mutex> lock(registry_mutex_);
    auto source = find_source_locked(source_id);
    auto sink = find_sink_locked(sink_id);
    if (sink->mixer().has_route(source_id))
        throw RouteError("source '" + source_id + "' is already connected to sink '" + sink_id + "'");
    sink->mixer().add_route(source_id, std::move(source), gain);
}

void AudioManager::disconnect(const std::string& source_id, const std::string& sink_id) {
    ensure_open();
    std::unique_lock<std::shared_mutex> lock(registry_mutex_);
    find_source_locked(source_id);
    auto sink = find_sink_locked(sink_id);
    if (!sink->mixer().remove_route(source_id))
        throw RouteError("source '" + source_id + "' is not connected to sink '" + sink_id + "'");
}

void AudioManager::set_gain(const std::string& source_id, const std::string& sink_id, double gain) {
    ensure_open();
    check_gain("gain", gain);
    std::shared_lock<std::shared_mutex> lock(registry_mutex_);
    find_source_locked(source_id);
    auto sink = find_sink_locked(sink_id);
    if (!sink->mixer().set_gain(source_id, gain))
        throw RouteError("source '" + source_id + "' is not connected to sink '" + sink_id + "'");
}

// ---- audio in and out ----

std::shared_ptr<Source> AudioManager::find_source(const std::string& source_id,
                                                  std::optional<uint64_t> serial) const {
    ensure_open();
    std::shared_ptr<Source> source;
    {
        std::shared_lock<std::shared_mutex> lock(registry_mutex_);
        source = find_source_locked(source_id);
    }
    // The caller then works on this object, so checking its serial is enough: if it
    // is removed from now on, what is pushed into it goes nowhere, as for any push
    // racing remove_source().
    if (serial && source->serial() != *serial)
        throw UnknownIdError("source", source_id,
                             "of serial " + std::to_string(*serial) + ": removed, or never was; '" + source_id +
                                 "' is now the source of serial " + std::to_string(source->serial()));
    return source;
}

void AudioManager::push(const std::string& source_id, const void* data, SampleFormat format, size_t frames,
                        int channels, std::optional<uint64_t> serial) {
    push_into(source_id, *find_source(source_id, serial), data, format, frames, channels);
}

void AudioManager::flush(const std::string& source_id, std::optional<uint64_t> serial) {
    auto source = find_source(source_id, serial);
    auto* pushable = dynamic_cast<PushSource*>(source.get());
    if (!pushable)
        throw std::invalid_argument("source '" + source_id + "' is a " + source->kind() +
                                    " source; only sources made with add_source() take flush()");
    pushable->flush();
}

void AudioManager::push_interleaved(const std::string& source_id, const void* data, SampleFormat format,
                                    size_t samples, std::optional<uint64_t> serial) {
    auto source = find_source(source_id, serial);  // one lookup: the source also says how to read the samples
    const size_t channels = static_cast<size_t>(source->channels());
    if (samples % channels != 0)
        throw std::invalid_argument("a 1-D push to source '" + source_id + "' is read as interleaved " +
                                    std::to_string(channels) + "-channel frames, but its length " +
                                    std::to_string(samples) + " is not a multiple of " + std::to_string(channels));
    push_into(source_id, *source, data, format, samples / channels, static_cast<int>(channels));
}

void AudioManager::push_into(const std::string& source_id, Source& source, const void* data, SampleFormat format,
                             size_t frames, int channels) {
    auto* pushable = dynamic_cast<PushSource*>(&source);
    if (!pushable)
        throw std::invalid_argument("source '" + source_id + "' is a " + source.kind() +
                                    " source; only sources made with add_source() take push()");
    if (channels != source.channels())
        throw std::invalid_argument("source '" + source_id + "' has " + std::to_string(source.channels()) +
                                    " channel(s), the pushed audio has " + std::to_string(channels));
    if (!all_samples_finite(data, format, frames * static_cast<size_t>(channels)))
        throw std::invalid_argument("pushed audio for source '" + source_id +
                                    "' contains NaN or infinite samples; nothing was queued");
    if (frames == 0) return;
    pushable->push(data, format, frames);
}

std::shared_ptr<Sink> AudioManager::manual_sink(const std::string& sink_id, bool wait) const {
    ensure_open();
    if (config_.realtime)
        throw ClockModeError(
            "render() needs a manual-clock engine (AudioManager(realtime=False)); a real-time sink is "
            "mixed by its own thread, read it with open_tap()");
    std::shared_lock<std::shared_mutex> lock(registry_mutex_, std::defer_lock);
    if (wait)
        lock.lock();
    else if (!lock.try_lock())
        return nullptr;
    return find_sink_locked(sink_id);
}

std::shared_ptr<PcmTap> AudioManager::open_tap(const std::string& sink_id, double seconds) {
    ensure_open();
    if (!std::isfinite(seconds) || seconds < 0.01 || seconds > 600.0)
        throw std::invalid_argument("tap seconds must be from 0.01 to 600, got " + number_text(seconds));
    std::shared_lock<std::shared_mutex> lock(registry_mutex_);
    return find_sink_locked(sink_id)->open_tap(static_cast<size_t>(seconds * kEngineRate));
}

// ---- stats and lifetime ----

EngineStats AudioManager::stats() const {
    ensure_open();
    EngineStats s;
    s.realtime = config_.realtime;
    s.closed = closed();
    std::shared_lock<std::shared_mutex> lock(registry_mutex_);
    std::map<std::string, std::vector<std::string>> sinks_of_source;
    for (const auto& [id, sink] : sinks_) {
        SinkStats ss;
        ss.id = id;
        ss.config = sink->config();
        ss.config.volume = sink->mixer().volume();
        ss.clock = sink->clock_stats();
        ss.mixer = sink->mixer().stats();
        ss.taps = sink->tap_count();
        ss.streamer = sink->streamer().stats();
        for (const auto& r : ss.mixer.routes) sinks_of_source[r.source_id].push_back(id);
        s.sinks.push_back(std::move(ss));
    }
    lock.unlock();
    {
        // Listener stats without the registry lock: signaling_mutex_ comes first in the lock order.
        std::lock_guard<std::mutex> signaling(signaling_mutex_);
        for (const auto& [target, session] : sessions_) {
            for (auto& ss : s.sinks) {
                if (ss.id == session.sink_id) ss.listeners.push_back({target, session.sender->stats()});
            }
        }
        s.listeners = sessions_.size();
    }
    s.live_senders = live_sender_count();
    s.signaling_backlog = dispatcher_->backlog();
    lock.lock();
    for (const auto& [id, source] : sources_) {
        SourceStats src;
        src.id = id;
        src.kind = source->kind();
        src.sample_rate = source->sample_rate();
        src.channels = source->channels();
        src.counters = source->counters();
        src.sinks = sinks_of_source[id];
        if (auto* net = dynamic_cast<const NetInput*>(source.get())) src.network = net->net_stats();
        s.sources.push_back(std::move(src));
    }
    return s;
}

void AudioManager::shutdown_impl(bool wait_for_callback) {
    if (made_before_fork()) return abandon_after_fork();
    // Declared before the lock, so released after it: dropping the Python
    // callback takes the GIL, and a thread holding the GIL may be waiting for
    // shutdown_mutex_ (a deallocation runs shutdown() with the GIL held).
    std::shared_ptr<SignalingHandler> handler;
    // A second caller waits here until the first one's shutdown is complete, so
    // "no callback runs after shutdown() returns" holds for every caller. Not a
    // callback, though: a shutdown in progress is waiting for the dispatcher to
    // deliver, that is for this very callback, and ends once it returns.
    std::unique_lock<std::mutex> once(shutdown_mutex_, std::defer_lock);
    if (dispatcher_->on_dispatcher_thread()) {
        if (!once.try_lock()) return;
    } else {
        once.lock();
    }
    if (closed_.exchange(true)) return;
    std::map<std::string, std::shared_ptr<Sink>> sinks;
    std::map<std::string, std::shared_ptr<Source>> sources;
    {
        std::lock_guard<std::mutex> signaling(signaling_mutex_);
        // Every listener gets a bye, delivered while the dispatcher drains below.
        while (!sessions_.empty()) close_session_locked(sessions_.begin()->first, true, "shutdown");
        std::unique_lock<std::shared_mutex> lock(registry_mutex_);
        sinks.swap(sinks_);
        sources.swap(sources_);
    }
    // Network receive threads first (no engine lock held), then the clocks.
    for (auto& [id, source] : sources)
        if (auto* net = dynamic_cast<NetInput*>(source.get())) net->stop();
    for (auto& [id, sink] : sinks) sink->stop();
    sources.clear();
    tasks_->stop();  // no engine lock held: a reap in progress takes signaling_mutex_ (and finds nothing)
    if (wait_for_callback) {
        dispatcher_->stop();  // delivers what is queued, then joins: no callback runs after this
    } else {
        dispatcher_->abandon();
    }
    {
        std::lock_guard<std::mutex> lock(handler_slot_->mutex);
        handler.swap(handler_slot_->handler);
    }
    shutdown_finished_.store(true, std::memory_order_release);
}

}  // namespace sinkcast
