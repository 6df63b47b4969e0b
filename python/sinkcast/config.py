"""The TOML configuration of `sinkcast serve`: sources, sinks, routes, Opus and ICE settings.

Every error names the file, the key and what is wrong::

    sinkcast.toml: sinks.kitchen.channels: must be 1 or 2, got 3

Example::

    [server]
    host = "127.0.0.1"
    port = 8080
    token = "s3cret"            # optional: WHEP, /api/status and /metrics need "Authorization: Bearer s3cret"

    [ice]
    bind_address = "127.0.0.1"  # the address ICE gathers on (and offers); default: the server's host.
                                # It must be an address of this host (checked at startup).
    port_range = [40000, 40100]
    udp_mux = true              # every listener on one UDP port, one libjuice picks at random in
                                # port_range; only a one-port range ([40000, 40000]) makes it known
    servers = ["stun:stun.example.org:3478"]
    connect_timeout = 30        # seconds (1 to 86400) a listener has to connect before it is dropped; 0: never

    [sinks.kitchen]
    channels = 2                # 1 or 2
    frame_ms = 20               # Opus frame: 10 or 20
    volume = 1.0
    bitrate = 128000            # bit/s
    complexity = 9              # 0-10
    low_delay = false           # Opus restricted low-delay mode

    [sources.doorbell]
    type = "tone"               # tone | noise | push | rtp | scream | pipe
    frequency_hz = 440.0
    amplitude = 0.25

    [sources.studio]            # RTP in (see README, "Network inputs")
    type = "rtp"
    port = 5004                 # 0: any free port
    bind_address = "127.0.0.1"  # the default: this machine only, whatever [server] host says;
                                # "0.0.0.0" to receive from the network
    encoding = "L16"            # L16 | L24 | opus
    sample_rate = 48000
    channels = 2
    payload_type = 96
    jitter_ms = 60              # jitter buffer target

    [sources.pc]                # Scream / ScreamRouter
    type = "scream"
    port = 4010
    bind_address = "239.255.77.77"     # a multicast group (Scream's default),
    multicast_interface = "127.0.0.1"  # joined on the interface with this address

    [sources.line]              # raw PCM from a FIFO, a file or "-" (stdin)
    type = "pipe"
    path = "/tmp/line.fifo"     # a FIFO takes writer after writer; a file or stdin ends
    sample_rate = 48000
    channels = 2
    format = "s16le"            # s16le | s32le | f32le

    [[routes]]
    source = "doorbell"
    sink = "kitchen"
    gain = 0.5
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from sinkcast._sinkcast import AudioManager

if TYPE_CHECKING:
    from sinkcast.inputs import PipeInput


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid; the message names file, key and problem."""


@dataclass
class SinkSpec:
    id: str
    channels: int = 2
    frame_ms: int = 20
    volume: float = 1.0
    bitrate: int | None = None
    complexity: int = 9
    low_delay: bool = False


@dataclass
class SourceSpec:
    id: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RouteSpec:
    source: str
    sink: str
    gain: float = 1.0


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    bind_address: str | None = None  # None: follow `host` (see ice_bind_address)
    port_range: tuple[int, int] | None = None
    udp_mux: bool = False
    connect_timeout: float | None = 30.0  # None: never
    ice_servers: list[str] = field(default_factory=list)
    sinks: list[SinkSpec] = field(default_factory=list)
    sources: list[SourceSpec] = field(default_factory=list)
    routes: list[RouteSpec] = field(default_factory=list)
    origin: str = "<built-in demo>"


# The least [ice] connect_timeout that leaves a listener time to connect.
MIN_CONNECT_TIMEOUT_S = 1.0

# Per source type: option -> (python type, required)
_SOURCE_OPTIONS: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "tone": {"frequency_hz": ((int, float), False), "amplitude": ((int, float), False)},
    "noise": {"amplitude": ((int, float), False), "seed": (int, False)},
    "push": {
        "sample_rate": (int, False),
        "channels": (int, False),
        "buffer_ms": (int, False),
        "jitter_ms": (int, False),
    },
    "rtp": {
        "port": (int, False),
        "bind_address": (str, False),
        "encoding": (str, False),
        "sample_rate": (int, False),
        "channels": (int, False),
        "payload_type": (int, False),
        "jitter_ms": (int, False),
        "buffer_ms": (int, False),
        "fec": (bool, False),
        "multicast_interface": (str, False),
    },
    "scream": {
        "port": (int, False),
        "bind_address": (str, False),
        "channels": (int, False),
        "jitter_ms": (int, False),
        "buffer_ms": (int, False),
        "multicast_interface": (str, False),
    },
    "pipe": {
        "path": (str, True),
        "sample_rate": (int, False),
        "channels": (int, False),
        "format": (str, False),
        "block_ms": (int, False),
        "pace": (bool, False),
        "jitter_ms": (int, False),
        "buffer_ms": (int, False),
    },
}

# Values the network and pipe inputs accept, checked when the file is read.
_RTP_ENCODINGS = ("L16", "L24", "opus")
_PIPE_FORMATS = ("s16le", "s32le", "f32le")

_SINK_KEYS: dict[str, type | tuple[type, ...]] = {
    "channels": int,
    "frame_ms": int,
    "volume": (int, float),
    "bitrate": int,
    "complexity": int,
    "low_delay": bool,
}


class _Checker:
    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.origin}: {key}: {problem}")

    def table(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {type(value).__name__}")
        return value

    def typed(self, value: Any, key: str, kind: type | tuple[type, ...]) -> Any:
        # bool is an int in Python; a flag where a number belongs (or the reverse) is a mistake.
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(key, f"must be {_type_names(kinds)}, got a boolean")
        if not isinstance(value, kinds):
            raise self.fail(key, f"must be {_type_names(kinds)}, got {type(value).__name__} {value!r}")
        return value

    def no_unknown(self, table: dict[str, Any], allowed: set[str], key: str) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            where = f"{key}.{unknown[0]}" if key else unknown[0]
            raise self.fail(where, f"unknown key (expected one of: {', '.join(sorted(allowed))})")


def _type_names(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}
    if set(kinds) == {int, float}:
        return "a number"
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse_config(data: dict[str, Any], origin: str) -> ServerConfig:
    """Validates a parsed TOML document (also usable for dicts built in code)."""
    c = _Checker(origin)
    c.no_unknown(data, {"server", "ice", "sinks", "sources", "routes"}, "")
    cfg = ServerConfig(origin=origin)

    server = c.table(data.get("server", {}), "server")
    c.no_unknown(server, {"host", "port", "token"}, "server")
    if "host" in server:
        cfg.host = c.typed(server["host"], "server.host", str)
    if "port" in server:
        cfg.port = c.typed(server["port"], "server.port", int)
        if not 0 <= cfg.port <= 65535:
            raise c.fail("server.port", f"must be 0 to 65535, got {cfg.port}")
    if "token" in server:
        cfg.token = c.typed(server["token"], "server.token", str)
        if problem := bearer_token_problem(cfg.token):
            raise c.fail("server.token", problem)

    ice = c.table(data.get("ice", {}), "ice")
    c.no_unknown(ice, {"bind_address", "port_range", "udp_mux", "servers", "connect_timeout"}, "ice")
    if "bind_address" in ice:
        cfg.bind_address = c.typed(ice["bind_address"], "ice.bind_address", str)
    if "port_range" in ice:
        pr = c.typed(ice["port_range"], "ice.port_range", list)
        if len(pr) != 2 or not all(isinstance(p, int) and not isinstance(p, bool) for p in pr):
            raise c.fail("ice.port_range", f"must be [first, last] port numbers, got {pr!r}")
        if not 1 <= pr[0] <= pr[1] <= 65535:
            raise c.fail("ice.port_range", f"must satisfy 1 <= first <= last <= 65535, got {pr!r}")
        cfg.port_range = (pr[0], pr[1])
    if "udp_mux" in ice:
        cfg.udp_mux = c.typed(ice["udp_mux"], "ice.udp_mux", bool)
    if "connect_timeout" in ice:
        timeout = c.typed(ice["connect_timeout"], "ice.connect_timeout", (int, float))
        # Below a second no listener can connect (ICE and DTLS take round trips):
        # every one would get its answer and then be dropped.
        if not (timeout == 0 or MIN_CONNECT_TIMEOUT_S <= timeout <= 86400):
            raise c.fail("ice.connect_timeout",
                         f"must be 0 (never) or seconds from {MIN_CONNECT_TIMEOUT_S:g} to 86400, got {timeout!r}")
        cfg.connect_timeout = float(timeout) if timeout else None
    if "servers" in ice:
        servers = c.typed(ice["servers"], "ice.servers", list)
        for i, s in enumerate(servers):
            c.typed(s, f"ice.servers[{i}]", str)
            if not s.startswith(("stun:", "turn:", "turns:")):
                raise c.fail(f"ice.servers[{i}]", f"must be a stun:, turn: or turns: URL, got {s!r}")
        cfg.ice_servers = list(servers)

    for sink_id, spec in c.table(data.get("sinks", {}), "sinks").items():
        key = f"sinks.{sink_id}"
        spec = c.table(spec, key)
        c.no_unknown(spec, set(_SINK_KEYS), key)
        sink = SinkSpec(id=sink_id)
        for name, kind in _SINK_KEYS.items():
            if name in spec:
                setattr(sink, name, c.typed(spec[name], f"{key}.{name}", kind))
        if sink.channels not in (1, 2):
            raise c.fail(f"{key}.channels", f"must be 1 or 2, got {sink.channels}")
        if sink.frame_ms not in (10, 20):
            raise c.fail(f"{key}.frame_ms", f"must be 10 or 20, got {sink.frame_ms}")
        cfg.sinks.append(sink)

    for source_id, spec in c.table(data.get("sources", {}), "sources").items():
        key = f"sources.{source_id}"
        spec = dict(c.table(spec, key))
        if "type" not in spec:
            raise c.fail(f"{key}.type", f"missing (one of: {', '.join(sorted(_SOURCE_OPTIONS))})")
        kind = c.typed(spec.pop("type"), f"{key}.type", str)
        if kind not in _SOURCE_OPTIONS:
            raise c.fail(f"{key}.type", f"unknown source type {kind!r} (one of: {', '.join(sorted(_SOURCE_OPTIONS))})")
        allowed = _SOURCE_OPTIONS[kind]
        c.no_unknown(spec, set(allowed), key)
        for name, (ptype, needed) in allowed.items():
            if name in spec:
                c.typed(spec[name], f"{key}.{name}", ptype)
            elif needed:
                raise c.fail(f"{key}.{name}", "missing")
        _check_input_values(c, key, kind, spec)
        cfg.sources.append(SourceSpec(id=source_id, type=kind, options=spec))

    routes = data.get("routes", [])
    if not isinstance(routes, list):
        raise c.fail("routes", "must be an array of tables ([[routes]])")
    sink_ids = {s.id for s in cfg.sinks}
    source_ids = {s.id for s in cfg.sources}
    for i, spec in enumerate(routes):
        key = f"routes[{i}]"
        spec = c.table(spec, key)
        c.no_unknown(spec, {"source", "sink", "gain"}, key)
        for required in ("source", "sink"):
            if required not in spec:
                raise c.fail(f"{key}.{required}", "missing")
        route = RouteSpec(
            source=c.typed(spec["source"], f"{key}.source", str),
            sink=c.typed(spec["sink"], f"{key}.sink", str),
            gain=float(c.typed(spec.get("gain", 1.0), f"{key}.gain", (int, float))),
        )
        if route.source not in source_ids:
            raise c.fail(f"{key}.source", f"no source named {route.source!r} is defined under [sources]")
        if route.sink not in sink_ids:
            raise c.fail(f"{key}.sink", f"no sink named {route.sink!r} is defined under [sinks]")
        cfg.routes.append(route)
    return cfg


def _check_input_values(c: _Checker, key: str, kind: str, spec: dict[str, Any]) -> None:
    """Range checks of the rtp / scream / pipe options (the engine checks the rest)."""
    if kind not in ("rtp", "scream", "pipe"):
        return
    if "port" in spec and not 0 <= spec["port"] <= 65535:
        raise c.fail(f"{key}.port", f"must be 0 (any free port) to 65535, got {spec['port']}")
    if "encoding" in spec and spec["encoding"].lower() not in {e.lower() for e in _RTP_ENCODINGS}:
        raise c.fail(f"{key}.encoding", f"must be one of {', '.join(_RTP_ENCODINGS)}, got {spec['encoding']!r}")
    if "payload_type" in spec and not (spec["payload_type"] in (10, 11) or 96 <= spec["payload_type"] <= 127):
        raise c.fail(f"{key}.payload_type", f"must be 10, 11 or 96-127, got {spec['payload_type']}")
    if "format" in spec and spec["format"] not in _PIPE_FORMATS:
        raise c.fail(f"{key}.format", f"must be one of {', '.join(_PIPE_FORMATS)}, got {spec['format']!r}")
    if "channels" in spec and not 1 <= spec["channels"] <= 8:
        raise c.fail(f"{key}.channels", f"must be 1 to 8, got {spec['channels']}")
    if "sample_rate" in spec and not 8000 <= spec["sample_rate"] <= 192000:
        raise c.fail(f"{key}.sample_rate", f"must be 8000 to 192000, got {spec['sample_rate']}")
    if "path" in spec and not spec["path"]:
        raise c.fail(f"{key}.path", "must not be empty")


def load_config(path: str | Path) -> ServerConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the file: {e.strerror or e}") from None
    except UnicodeDecodeError as e:  # TOML is UTF-8 (a Latin-1 "é" in a comment, say)
        line = e.object[: e.start].count(b"\n") + 1
        raise ConfigError(f"{p}: line {line}: not UTF-8 text (byte 0x{e.object[e.start]:02x})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return parse_config(data, str(p))


DEMO: dict[str, Any] = {
    "sinks": {
        "music": {"channels": 2},
        "intercom": {"channels": 1, "frame_ms": 10, "low_delay": True, "bitrate": 32000},
        "tone": {"channels": 1},
    },
    "sources": {
        "a440": {"type": "tone", "frequency_hz": 440.0, "amplitude": 0.3},
        "e660": {"type": "tone", "frequency_hz": 660.0, "amplitude": 0.2},
        "hiss": {"type": "noise", "amplitude": 0.05},
    },
    "routes": [
        {"source": "a440", "sink": "music"},
        {"source": "e660", "sink": "music", "gain": 0.5},
        {"source": "hiss", "sink": "intercom"},
        {"source": "a440", "sink": "intercom", "gain": 0.3},
        {"source": "a440", "sink": "tone"},
    ],
}


# RFC 6750's b64token: what a browser can send in a header, and the page can take from its URL.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def bearer_token_problem(token: str) -> str | None:
    """Why `token` cannot be a bearer token (None when it can)."""
    if not token:
        return "must not be empty (leave it out for no token)"
    if not _BEARER_TOKEN.fullmatch(token):
        return ("must be letters, digits and - . _ ~ + / (then = padding), as RFC 6750 allows; "
                f"got {token!r}")
    return None


def ice_bind_address(cfg: ServerConfig) -> str:
    """The address ICE gathers on: `[ice] bind_address`, or else where the HTTP server listens.

    A server on every interface ("0.0.0.0", "::") must offer its listeners an
    address they can reach too, not loopback; a named host ("localhost" aside)
    gets every interface, since ICE takes addresses, not names."""
    if cfg.bind_address is not None:
        return cfg.bind_address
    if cfg.host in ("0.0.0.0", "::", ""):
        return ""
    if cfg.host == "localhost":
        return "127.0.0.1"
    try:
        ipaddress.ip_address(cfg.host)
    except ValueError:
        return ""
    return cfg.host


def demo_config() -> ServerConfig:
    return parse_config(DEMO, "<built-in demo>")


def build_engine(cfg: ServerConfig, pipe_inputs: dict[str, PipeInput] | None = None) -> AudioManager:
    """An engine with the configured sinks, sources and routes. Engine errors are
    re-raised as ConfigError naming the key. The readers of pipe sources stop with
    the engine; pass a dict as `pipe_inputs` to get them by source id (for their
    stats)."""
    _check_bind_address(cfg)
    try:
        eng = AudioManager(
            bind_address=ice_bind_address(cfg), port_range=cfg.port_range, ice_servers=cfg.ice_servers,
            ice_udp_mux=cfg.udp_mux, connect_timeout=cfg.connect_timeout,
        )
    except ValueError as e:  # the [ice] table: the engine checks what parse_config does not
        # The engine names its argument ("ice_servers: ...", "port_range must ..."); name the config key.
        message = str(e)
        argument = message.split(" ", 1)[0].rstrip(":")
        key = {"ice_servers": "servers", "bind_address": "bind_address", "port_range": "port_range"}.get(argument)
        if key is None:
            raise ConfigError(f"{cfg.origin}: ice: {message}") from None
        raise ConfigError(f"{cfg.origin}: ice.{key}: {message[len(argument):].lstrip(':').strip()}") from None
    # Pipe readers start once the routes are made: a route plays only what is
    # pushed after it exists, and a file should play from its first block.
    readers: list[PipeInput] = []
    try:
        for s in cfg.sinks:
            _with_key(cfg, f"sinks.{s.id}", lambda: eng.add_sink(
                s.id, channels=s.channels, frame_ms=s.frame_ms, volume=float(s.volume),
                bitrate=s.bitrate, complexity=s.complexity, low_delay=s.low_delay))
        for src in cfg.sources:
            o = src.options
            if src.type == "tone":
                _with_key(cfg, f"sources.{src.id}", lambda: eng.add_tone_source(
                    src.id, frequency_hz=float(o.get("frequency_hz", 440.0)),
                    amplitude=float(o.get("amplitude", 0.25))))
            elif src.type == "noise":
                _with_key(cfg, f"sources.{src.id}", lambda: eng.add_noise_source(
                    src.id, amplitude=float(o.get("amplitude", 0.1)), seed=int(o.get("seed", 0))))
            elif src.type == "rtp":
                _with_key(cfg, f"sources.{src.id}", lambda: eng.add_rtp_source(src.id, **o), network=True)
            elif src.type == "scream":
                _with_key(cfg, f"sources.{src.id}", lambda: eng.add_scream_source(src.id, **o), network=True)
            elif src.type == "pipe":
                _with_key(cfg, f"sources.{src.id}", lambda: readers.append(_add_pipe(eng, src.id, o)), network=True)
            else:
                _with_key(cfg, f"sources.{src.id}", lambda: eng.add_source(src.id, **o))
        for i, r in enumerate(cfg.routes):
            _with_key(cfg, f"routes[{i}]", lambda: eng.connect(r.source, r.sink, gain=r.gain))
        for reader in readers:
            reader.start()
            if pipe_inputs is not None:
                pipe_inputs[reader.source_id] = reader
    except BaseException:
        for reader in readers:
            reader.stop()
        eng.shutdown()
        raise
    return eng


def _check_bind_address(cfg: ServerConfig) -> None:
    """Fails unless `[ice] bind_address` is an address of this host.

    The engine opens a listener's socket only when a listener comes: on an
    address of another host every WHEP POST would get 503 "try again later"
    for what is a permanent mistake in the file."""
    address = cfg.bind_address
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return  # "" (every interface), or not an address: the engine says what is wrong
    if ip.is_unspecified:
        return
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(ip), 0))
    except OSError as e:
        raise ConfigError(f"{cfg.origin}: ice.bind_address: {address} is not an address of this host "
                          f"(cannot bind a UDP socket there: {e.strerror or e})") from None


def _with_key(cfg: ServerConfig, key: str, call: Any, network: bool = False) -> None:
    try:
        call()
    except (ValueError, KeyError, OverflowError) as e:
        raise ConfigError(f"{cfg.origin}: {key}: {e}") from None
    except TypeError as e:
        # nanobind's word for an integer outside the C type's range (seed = -1,
        # complexity = 10000000000): the types were checked when parsing.
        raise ConfigError(
            f"{cfg.origin}: {key}: a whole number there is out of range (negative, or too large)") from None
    except (OSError, RuntimeError) as e:
        if not network:  # a socket that cannot bind, a path that cannot open
            raise
        raise ConfigError(f"{cfg.origin}: {key}: {e}") from None


def _add_pipe(eng: AudioManager, source_id: str, o: dict[str, Any]) -> PipeInput:
    """The pipe source and its reader, not yet started."""
    from sinkcast.inputs import add_pipe_source

    opts = dict(o)
    path = opts.pop("path")
    if "format" in opts:
        opts["sample_format"] = opts.pop("format")
    return add_pipe_source(eng, source_id, path, start=False, **opts)
