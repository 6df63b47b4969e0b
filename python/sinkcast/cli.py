"""The ``sinkcast`` command line."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from collections.abc import Sequence

import numpy as np

from sinkcast._sinkcast import AudioManager


def _meter(level: float, width: int = 30) -> str:
    # dBFS from -60 to 0 mapped onto the bar.
    db = 20.0 * np.log10(max(level, 1e-6))
    filled = int(round(width * min(1.0, max(0.0, (db + 60.0) / 60.0))))
    return "#" * filled + "." * (width - filled) + f" {db:6.1f} dBFS"


def run_console_demo(seconds: float | None, interval: float = 0.5) -> int:
    """Mixes tone and noise sources into two sinks in real time and prints their levels."""
    with AudioManager() as eng:
        eng.add_sink("music", channels=2)
        eng.add_sink("intercom", channels=1)
        eng.add_tone_source("a440", frequency_hz=440.0, amplitude=0.25)
        eng.add_tone_source("e660", frequency_hz=660.0, amplitude=0.2)
        eng.add_noise_source("hiss", amplitude=0.05)
        eng.connect("a440", "music")
        eng.connect("e660", "music", gain=0.5)
        eng.connect("hiss", "intercom")
        eng.connect("a440", "intercom", gain=0.3)
        taps = {sink: eng.open_tap(sink, seconds=2.0) for sink in eng.sinks()}
        print("sinkcast demo: mixing 'music' (440 Hz + 660 Hz) and 'intercom' (noise + 440 Hz) in real time.")
        print("Ctrl-C stops it.", flush=True)
        stop = False

        def on_sigint(signum: int, frame: object) -> None:
            nonlocal stop
            stop = True

        previous = signal.signal(signal.SIGINT, on_sigint)
        started = time.monotonic()
        try:
            while not stop and (seconds is None or time.monotonic() - started < seconds):
                time.sleep(interval)
                for sink, tap in taps.items():
                    block = tap.read()
                    rms = float(np.sqrt(np.mean(np.square(block, dtype=np.float64)))) if block.size else 0.0
                    print(f"{sink:>9} {block.shape[0]:6d} frames  RMS {_meter(rms)}")
                print(flush=True)
        finally:
            signal.signal(signal.SIGINT, previous)
        stats = eng.stats()
        for sink, s in stats["sinks"].items():
            print(f"{sink}: {s['frames_mixed']} frames mixed, {s['late_periods']} late periods")
    return 0


def tcp_port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535, got {port}")
    return port


def positive_seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sinkcast", description="Mix live audio and stream it to browsers.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve sinks to browsers and WHEP players (a built-in demo without --config)")
    serve.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1, or the config's)")
    serve.add_argument("--port", type=tcp_port, default=None, help="port to listen on (default 8080, or the config's)")
    serve.add_argument("--config", default=None, help="a TOML file of sources, sinks and routes")
    demo = commands.add_parser("demo", help="mix tone and noise sources in real time and print their levels")
    demo.add_argument("--seconds", type=positive_seconds, default=None,
                      help="stop after this long (default: until Ctrl-C)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        from sinkcast.config import ConfigError, demo_config, load_config

        try:
            cfg = load_config(args.config) if args.config else demo_config()
        except ConfigError as e:
            print(f"sinkcast: {e}", file=sys.stderr)
            return 2
        if args.host is not None:
            cfg.host = args.host
        if args.port is not None:
            cfg.port = args.port
        try:
            from sinkcast.server import serve as run_server
        except ModuleNotFoundError as e:  # `pip install .` without the [server] extra
            if (e.name or "").partition(".")[0] != "aiohttp":
                raise
            print(f"sinkcast: serve needs {e.name}, which is not installed: pip install 'sinkcast[server]'",
                  file=sys.stderr)
            return 1
        try:
            return run_server(cfg)
        except ConfigError as e:
            print(f"sinkcast: {e}", file=sys.stderr)
            return 2
        except OSError as e:
            print(f"sinkcast: cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}", file=sys.stderr)
            return 1
    if args.command == "demo":
        return run_console_demo(args.seconds)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
