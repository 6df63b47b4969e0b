#include "bindings/stats_dict.h"

#include <nanobind/stl/string.h>

namespace nb = nanobind;

namespace sinkcast::bindings {

namespace {

nb::dict sink_to_dict(const SinkStats& s) {
    nb::dict d;
    d["channels"] = s.config.channels;
    d["frame_ms"] = s.config.frame_ms;
    d["volume"] = s.config.volume;
    const OpusSettings opus = opus_settings_for(s.config);  // the bitrate in use, also when left to the default
    d["bitrate"] = opus.bitrate_bps;
    d["complexity"] = opus.complexity;
    d["low_delay"] = opus.low_delay;
    d["periods"] = s.clock.periods;
    d["late_periods"] = s.clock.late_periods;
    d["clock_resyncs"] = s.clock.resyncs;
    d["clock_errors"] = s.clock.errors;
    d["clock_last_error"] = s.clock.last_error;
    d["frames_mixed"] = s.mixer.frames_mixed;
    d["clipped_samples"] = s.mixer.clipped_samples;
    d["peak"] = s.mixer.peak;
    d["taps"] = s.taps;
    nb::dict routes;
    for (const auto& r : s.mixer.routes) {
        nb::dict rd;
        rd["gain"] = r.gain;
        rd["underruns"] = r.underruns;
        rd["overruns"] = r.overruns;
        rd["dropped_frames"] = r.dropped_frames;
        rd["buffered_frames"] = r.buffered_frames;
        routes[r.source_id.c_str()] = rd;
    }
    d["routes"] = routes;
    d["frames_encoded"] = s.streamer.frames_encoded;
    d["bytes_encoded"] = s.streamer.bytes_encoded;
    nb::dict listeners;
    for (const auto& l : s.listeners) {
        nb::dict ld;
        ld["state"] = l.sender.state;
        ld["track_open"] = l.sender.track_open;
        ld["packets_sent"] = l.sender.packets_sent;
        ld["bytes_sent"] = l.sender.bytes_sent;
        if (l.sender.rtt_ms >= 0)
            ld["rtt_ms"] = l.sender.rtt_ms;
        else
            ld["rtt_ms"] = nb::none();
        listeners[l.target.c_str()] = ld;
    }
    d["listeners"] = listeners;
    return d;
}

nb::dict net_to_dict(const NetInputStats& n) {
    nb::dict d;
    d["protocol"] = n.protocol;
    d["encoding"] = n.encoding;
    d["bind_address"] = n.bind_address;
    d["port"] = n.port;
    d["packets"] = n.packets;
    d["bytes"] = n.bytes;
    d["lost"] = n.lost;
    d["late"] = n.late;
    d["reordered"] = n.reordered;
    d["duplicates"] = n.duplicates;
    d["malformed"] = n.malformed;
    d["errors"] = n.errors;
    d["last_error"] = n.last_error;
    d["jitter_ms"] = n.jitter_ms;
    d["ssrc_changes"] = n.ssrc_changes;
    d["foreign"] = n.foreign;
    d["resyncs"] = n.resyncs;
    d["concealed_frames"] = n.concealed_frames;
    d["skipped_frames"] = n.skipped_frames;
    d["fec_recovered"] = n.fec_recovered;
    d["decode_errors"] = n.decode_errors;
    d["format_changes"] = n.format_changes;
    d["queued_packets"] = n.queued_packets;
    d["wire_sample_rate"] = n.wire_sample_rate;
    d["wire_channels"] = n.wire_channels;
    d["jitter_target_ms"] = n.target_delay_ms;
    return d;
}

nb::dict source_to_dict(const SourceStats& s) {
    nb::dict d;
    d["kind"] = s.kind;
    d["sample_rate"] = s.sample_rate;
    d["channels"] = s.channels;
    d["frames_in"] = s.counters.frames_in;
    d["underruns"] = s.counters.underruns;
    d["overruns"] = s.counters.overruns;
    d["dropped_frames"] = s.counters.dropped_frames;
    nb::list sinks;
    for (const auto& id : s.sinks) sinks.append(id);
    d["sinks"] = sinks;
    if (s.network) d["network"] = net_to_dict(*s.network);
    return d;
}

}  // namespace

nb::dict stats_to_dict(const EngineStats& stats) {
    nb::dict d;
    d["realtime"] = stats.realtime;
    nb::dict sinks, sources;
    for (const auto& s : stats.sinks) sinks[s.id.c_str()] = sink_to_dict(s);
    for (const auto& s : stats.sources) sources[s.id.c_str()] = source_to_dict(s);
    d["sinks"] = sinks;
    d["sources"] = sources;
    // Network inputs by source id: the same dict as sources[id]["network"].
    nb::dict inputs;
    for (const auto& s : stats.sources)
        if (s.network) inputs[s.id.c_str()] = sources[s.id.c_str()]["network"];
    d["inputs"] = inputs;
    d["listeners"] = stats.listeners;
    d["live_peers"] = stats.live_senders;
    d["signaling_backlog"] = stats.signaling_backlog;
    return d;
}

}  // namespace sinkcast::bindings
