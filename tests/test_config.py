"""The TOML config: every error names the file, the key and what is wrong."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from sinkcast.config import ConfigError, build_engine, ice_bind_address, load_config, parse_config

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

GOOD = """
[server]
host = "127.0.0.1"
port = 9000
token = "t"

[ice]
bind_address = "127.0.0.1"
port_range = [41000, 41100]
udp_mux = true
servers = ["stun:127.0.0.1:3478"]
connect_timeout = 12.5

[sinks.kitchen]
channels = 2
frame_ms = 10
volume = 0.8
bitrate = 96000
complexity = 5
low_delay = true

[sources.bell]
type = "tone"
frequency_hz = 880
amplitude = 0.2

[sources.mic]
type = "push"
sample_rate = 44100
channels = 1

[[routes]]
source = "bell"
sink = "kitchen"
gain = 0.5

[[routes]]
source = "mic"
sink = "kitchen"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sinkcast.toml"
    p.write_text(text)
    return p


def test_a_full_config_builds_the_engine(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert (cfg.host, cfg.port, cfg.token, cfg.port_range) == ("127.0.0.1", 9000, "t", (41000, 41100))
    assert cfg.udp_mux is True
    assert cfg.connect_timeout == 12.5
    eng = build_engine(cfg)
    try:
        stats = eng.stats()
        assert stats["sinks"]["kitchen"]["frame_ms"] == 10
        kitchen = stats["sinks"]["kitchen"]
        assert (kitchen["bitrate"], kitchen["complexity"], kitchen["low_delay"]) == (96000, 5, True)
        assert stats["sinks"]["kitchen"]["volume"] == pytest.approx(0.8)
        assert stats["sinks"]["kitchen"]["routes"]["bell"]["gain"] == pytest.approx(0.5)
        assert stats["sources"]["mic"]["sample_rate"] == 44100
    finally:
        eng.shutdown()


def test_ice_connect_timeout_reaches_the_engine(tmp_path: Path) -> None:
    eng = build_engine(load_config(write(tmp_path, "[ice]\nconnect_timeout = 1\n[sinks.k]\n")))
    byes: queue.Queue[str] = queue.Queue()

    def on_signal(target: str, type: str, message: str) -> None:
        if type == "bye":
            byes.put(message)

    eng.set_python_webrtc_signaling_callback(on_signal)
    try:
        eng.handle_incoming_webrtc_signaling_message("k/l", "request_offer", "")
        assert byes.get(timeout=10) == "connect timeout"
    finally:
        eng.shutdown()
    assert load_config(write(tmp_path, "[ice]\nconnect_timeout = 0\n")).connect_timeout is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sinks.k]\nchannels = 3\n", "sinks.k.channels: must be 1 or 2, got 3"),
        ("[sinks.k]\nframe_ms = 15\n", "sinks.k.frame_ms: must be 10 or 20, got 15"),
        ("[sinks.k]\nchannels = \"two\"\n", "sinks.k.channels: must be an integer, got str 'two'"),
        ("[sinks.k]\nvolume = true\n", "sinks.k.volume: must be a number, got a boolean"),
        ("[sinks.k]\ncolour = 1\n", "sinks.k.colour: unknown key"),
        ("[sinks.k]\nvolume = 20.0\n", "sinks.k: volume must be a finite number from 0 to 10"),
        ("[sinks.k]\nbitrate = 5\n", "sinks.k: bitrate must be 6000 to 510000"),
        ("[sources.s]\nfrequency_hz = 1\n", "sources.s.type: missing"),
        ("[sources.s]\ntype = \"guitar\"\n", "sources.s.type: unknown source type 'guitar'"),
        ("[sources.s]\ntype = \"tone\"\nfrequency_hz = 30000\n", "sources.s: frequency_hz must be above 0"),
        ("[sources.s]\ntype = \"push\"\nsample_rate = 4000\n", "sources.s: sample_rate must be 8000 to 192000"),
        ("[sources.s]\ntype = \"tone\"\nseed = 1\n", "sources.s.seed: unknown key"),
        ("[[routes]]\nsource = \"a\"\nsink = \"b\"\n", "routes[0].source: no source named 'a'"),
        ("[sources.a]\ntype=\"tone\"\n[[routes]]\nsource = \"a\"\n", "routes[0].sink: missing"),
        ("[sources.a]\ntype=\"tone\"\n[sinks.b]\n[[routes]]\nsource = \"a\"\nsink = \"b\"\ngain = 99\n",
         "routes[0]: gain must be a finite number from 0 to 10"),
        ("[server]\nport = 70000\n", "server.port: must be 0 to 65535"),
        ("[sources.n]\ntype = \"noise\"\nseed = -1\n", "sources.n: seed must be 0 to 2**64-1, got -1"),
        ("[sinks.k]\ncomplexity = 10000000000\n", "sinks.k: complexity is out of range, got 10000000000"),
        ("[sinks.k]\ncomplexity = 100000000000000000000\n", "sinks.k: a whole number there is out of range"),
        ("[ice]\nport_range = [5, 2]\n", "ice.port_range: must satisfy"),
        ("[ice]\nudp_mux = 1\n", "ice.udp_mux: must be"),
        ("[ice]\nconnect_timeout = -1\n", "ice.connect_timeout: must be 0 (never) or seconds from 1 to 86400"),
        ("[ice]\nconnect_timeout = nan\n", "ice.connect_timeout: must be 0 (never) or seconds from 1 to 86400"),
        # No listener connects that fast: each got its answer and was then dropped.
        ("[ice]\nconnect_timeout = 0.01\n", "ice.connect_timeout: must be 0 (never) or seconds from 1 to 86400, "
                                              "got 0.01"),
        # Not an address of this host: every POST got "503, try again later" for a mistake in the file.
        ("[ice]\nbind_address = \"192.0.2.7\"\n", "ice.bind_address: 192.0.2.7 is not an address of this host"),
        ("[ice]\nconnect_timeout = \"30\"\n", "ice.connect_timeout: must be"),
        ("[ice]\nservers = [\"http://x\"]\n", "ice.servers[0]: must be a stun:, turn: or turns: URL"),
        ("[ice]\nbind_address = \"localhost\"\n", "ice.bind_address: must be a numeric IPv4 or IPv6 address"),
        ("[ice]\nservers = [\"stun:\"]\n", "ice.servers: 'stun:' is not a"),
        ("[server]\ntoken = \"\"\n", "server.token: must not be empty (leave it out for no token)"),
        ("[server]\ntoken = \" s3cret\"\n", "server.token: must be letters, digits and - . _ ~ + /"),
        ("[server]\ntoken = \"p\u00e4sswort\"\n", "server.token: must be letters, digits and - . _ ~ + /"),
        ("[colours]\n", "colours: unknown key"),
        ("sinks = 3\n", "sinks: must be a table"),
        ("this is = = not toml", "not valid TOML"),
    ],
)
def test_errors_name_file_key_and_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        build_engine(load_config(path)).shutdown()
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes("# caf\u00e9 music\n[sinks.k]\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: line 1: not UTF-8 text (byte 0xe9)"


@pytest.mark.parametrize(
    ("host", "ice", "expected"),
    [
        ("127.0.0.1", None, "127.0.0.1"),
        ("::1", None, "::1"),
        ("localhost", None, "127.0.0.1"),
        # A server for the whole network must offer its listeners a reachable address, not loopback.
        ("0.0.0.0", None, ""),
        ("::", None, ""),
        ("myhost.example", None, ""),
        ("0.0.0.0", "127.0.0.1", "127.0.0.1"),  # [ice] bind_address wins
    ],
)
def test_ice_follows_the_http_host_unless_set(host: str, ice: str | None, expected: str) -> None:
    text = f'[server]\nhost = "{host}"\n' + (f'[ice]\nbind_address = "{ice}"\n' if ice else "")
    cfg = parse_config(tomllib.loads(text), "t.toml")
    assert ice_bind_address(cfg) == expected


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.toml")
