"""The browser page, end to end, in a real headless Chromium.

Starts `python -m sinkcast serve` (the built-in demo) as a subprocess, opens
its page in headless Chromium driven by selenium, plays the demo sink `tone`
(a pure 440 Hz sine) over WebRTC/WHEP, and checks what the page hears: RTP
packets arrive, and the analyser's spectral peak is at 440 Hz. Then stop,
and a restart of the server that the page must ride out by itself.

Chromium, chromedriver (Debian's `chromium`, `chromium-driver`) and selenium
(PyPI) are installed on first use; if that fails, the tests fail with the
reason. A screenshot goes to tests/artifacts/browser.png.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from helpers_subprocess.common import free_port

# Module-level check: selenium is installed by the `selenium_mod` fixture when
# it is missing here.
try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TONE_HZ = 440.0


# ---------------------------------------------------------------------------- installs


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _ensure_chromium() -> None:
    if os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK):
        return
    if shutil.which("apt-get") is None:
        pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} is missing and there is no apt-get to install them")
    packages = ["chromium", "chromium-driver"]

    def candidates_known() -> bool:
        policy = _run(["apt-cache", "policy", *packages], timeout=120)
        out = policy.stdout
        return policy.returncode == 0 and out.count("Candidate:") == 2 and "Candidate: (none)" not in out

    if not candidates_known():
        update = _run(["apt-get", "update"], timeout=600)
        if update.returncode != 0:
            pytest.fail(f"apt-get update failed ({update.returncode}):\n{_tail(update.stdout + update.stderr)}")
        if not candidates_known():
            policy = _run(["apt-cache", "policy", *packages], timeout=120)
            pytest.fail(f"apt has no candidate for {packages}:\n{policy.stdout}{policy.stderr}")
    install = _run(["apt-get", "install", "-y", "-q", *packages], timeout=1800)
    if install.returncode != 0:
        pytest.fail(f"apt-get install {' '.join(packages)} failed ({install.returncode}):\n"
                    f"{_tail(install.stdout + install.stderr)}")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is still missing after installing {packages}")


def _ensure_selenium() -> Any:
    if HAVE_SELENIUM:
        return importlib.import_module("selenium.webdriver")
    try:
        return importlib.import_module("selenium.webdriver")
    except ImportError:
        pass
    cmd = [sys.executable, "-m", "pip", "install", "-q", "selenium"]
    pip = _run(cmd, timeout=600)
    if pip.returncode != 0 and "externally-managed-environment" in (pip.stdout + pip.stderr):
        pip = _run([*cmd, "--break-system-packages"], timeout=600)
    if pip.returncode != 0:
        pytest.fail(f"pip install selenium failed ({pip.returncode}):\n{_tail(pip.stdout + pip.stderr)}")
    importlib.invalidate_caches()
    try:
        return importlib.import_module("selenium.webdriver")
    except ImportError as e:
        pytest.fail(f"selenium is still not importable after pip install: {e}")


@pytest.fixture(scope="session")
def webdriver_mod() -> Any:
    _ensure_chromium()
    return _ensure_selenium()


# ------------------------------------------------------------------------------ server


def _get_json(url: str, timeout: float = 2.0, token: str | None = None) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=timeout) as res:
        return json.loads(res.read().decode())


class Server:
    """`python -m sinkcast serve` on a fixed port; restartable on the same port."""

    def __init__(self, port: int, logdir: Path, extra_args: tuple[str, ...] = (), token: str | None = None) -> None:
        self.port = port
        self.extra_args = extra_args
        self.token = token
        self.url = f"http://127.0.0.1:{port}/"
        self.logdir = logdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None
        self.runs += 1
        self.log = self.logdir / f"server-{self.runs}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sinkcast", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 *self.extra_args],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                pytest.fail(f"the server exited with {code} before answering:\n{self.output()}")
            try:
                _get_json(self.url + "api/sinks", timeout=1.0, token=self.token)
                return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the server did not answer GET /api/sinks within {timeout} s:\n{self.output()}")
            time.sleep(0.2)

    def stop(self) -> int:
        """SIGINT, then wait up to 10 s; returns the exit code (killing it on timeout)."""
        assert self.proc is not None
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"the server did not exit within 10 s of SIGINT:\n{self.output()}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def output(self) -> str:
        try:
            return _tail(self.log.read_text(errors="replace"), 40)
        except OSError:
            return "(no output)"

    def sinks(self) -> dict[str, dict[str, Any]]:
        return {s["id"]: s for s in _get_json(self.url + "api/sinks", token=self.token)}


@contextmanager
def running_server(logdir: Path, extra_args: tuple[str, ...] = (), token: str | None = None) -> Iterator[Server]:
    """A server on a free port; on the way out it must exit cleanly on SIGINT."""
    srv = Server(free_port(), logdir, extra_args=extra_args, token=token)
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None:
            code = srv.stop()
            assert code == 0, f"the server exited with {code} on SIGINT:\n{srv.output()}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv


# ----------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def driver(webdriver_mod: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",
        # The server's only ICE candidates are 127.0.0.1 host candidates.
        "--force-webrtc-ip-handling-policy=default",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--window-size=1280,900",
        "--no-first-run",
        "--no-default-browser-check",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        # Chromium leaves its singleton socket's directory in TMPDIR when it
        # exits; in pytest's own temporary directory, which pytest prunes.
        env = dict(os.environ, TMPDIR=str(tmp_path_factory.mktemp("chromium-tmp")))
        drv = webdriver_mod.Chrome(service=Service(executable_path=CHROMEDRIVER, env=env), options=opts)
    except Exception as e:  # noqa: BLE001 - report whatever selenium raises
        pytest.fail(f"could not start headless Chromium through {CHROMEDRIVER}: {e}")
    drv.set_script_timeout(10)
    try:
        yield drv
    finally:
        drv.quit()


def _console(drv: Any) -> str:
    try:
        entries = drv.get_log("browser")
    except Exception:  # noqa: BLE001
        return "(no console log)"
    return "\n".join(f"{e.get('level')}: {e.get('message')}" for e in entries[-30:]) or "(console empty)"


def _page_state(drv: Any, sink: str) -> str:
    state = drv.execute_script(
        """
        const id = arguments[0];
        const sc = window.sinkcast;
        if (!sc) return {hook: 'window.sinkcast is missing'};
        const p = sc.players[id];
        return {server: sc.server(), wanted: sc.wanted(), sinks: sc.sinks().map(s => s.id),
                state: p ? p.state : null, error: p ? p.error : null,
                pc: p && p.pc ? {conn: p.pc.connectionState, ice: p.pc.iceConnectionState,
                                 gathering: p.pc.iceGatheringState} : null,
                audioContext: p && p.audioContext ? p.audioContext.state : null,
                stats: sc.stats(id)};
        """,
        sink,
    )
    return json.dumps(state, indent=1, default=str)


def _wait_for(cond: Callable[[], Any], timeout: float, what: Callable[[], str], interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what()}")
        time.sleep(interval)


def _stats(drv: Any, sink: str) -> dict[str, Any] | None:
    result: dict[str, Any] | None = drv.execute_script("return window.sinkcast.stats(arguments[0]);", sink)
    return result


def _button(drv: Any, sink: str, action: str) -> Any:
    from selenium.webdriver.common.by import By

    return drv.find_element(By.CSS_SELECTOR, f'button[data-sink="{sink}"][data-action="{action}"]')


def _open_page(drv: Any, server: Server, demo: bool = True, fragment: str = "") -> None:
    from selenium.webdriver.common.by import By

    drv.get("about:blank")  # a fresh page even when only the fragment differs
    drv.get(server.url + fragment)
    expected = set(server.sinks())
    if demo:
        assert {"tone", "music", "intercom"} <= expected, f"the demo's sinks are not all there: {expected}"

    def listed() -> bool:
        cards = drv.find_elements(By.CSS_SELECTOR, "article.sink[data-sink]")
        return {c.get_attribute("data-sink") for c in cards} == expected

    _wait_for(listed, 10, lambda: f"the page to list {sorted(expected)}:\n{_page_state(drv, 'tone')}\n{_console(drv)}")


def _play_until_packets(drv: Any, server: Server, sink: str, packets: int, timeout: float) -> dict[str, Any]:
    def enough() -> dict[str, Any] | None:
        s = _stats(drv, sink)
        return s if s and s.get("packetsReceived", 0) > packets else None

    result: dict[str, Any] = _wait_for(
        enough, timeout,
        lambda: f"more than {packets} packets on '{sink}':\n{_page_state(drv, sink)}\n"
                f"console:\n{_console(drv)}\nserver:\n{server.output()}",
    )
    return result


def _measure_frequency(drv: Any, sink: str, n: int = 6) -> list[float]:
    readings: list[float] = []
    for _ in range(n * 3):
        f = drv.execute_script("return window.sinkcast.dominantFrequency(arguments[0]);", sink)
        if f is not None:
            readings.append(float(f))
            if len(readings) == n:
                break
        time.sleep(0.3)
    return readings


def _stop_playing(drv: Any, server: Server, sink: str) -> None:
    """Clicks the sink's stop button and waits for the server to see its listener go."""
    _button(drv, sink, "stop").click()
    _wait_for(lambda: _listeners(server, sink) == 0, 5,
              lambda: f"0 listeners on '{sink}' after stop: {server.sinks()[sink]}")


def _listeners(server: Server, sink: str) -> int:
    return int(server.sinks()[sink]["listeners"])


# ------------------------------------------------------------------------------- tests


def test_play_tone_in_chromium(driver: Any, server: Server) -> None:
    _open_page(driver, server)
    assert _listeners(server, "tone") == 0

    _button(driver, "tone", "play").click()
    stats = _play_until_packets(driver, server, "tone", 50, timeout=20)
    assert stats["connectionState"] == "connected", stats
    assert stats["codec"] is None or stats["codec"].lower() == "audio/opus", stats
    assert _listeners(server, "tone") == 1

    readings = _measure_frequency(driver, "tone")
    assert len(readings) >= 3, f"dominantFrequency gave no value: {readings}\n{_page_state(driver, 'tone')}"
    assert all(abs(f - TONE_HZ) <= 5.0 for f in readings), f"peaks not at {TONE_HZ} Hz: {readings}"
    assert abs(statistics.median(readings) - TONE_HZ) <= 5.0

    # The level meter hears the tone (amplitude 0.3, about -13.5 dBFS RMS; Opus
    # and the browser's playout change it a little).
    level = driver.execute_script("return window.sinkcast.level('tone');")
    assert level is not None and -30.0 < level["rmsDb"] < 0.0, level

    # The page shows the stats it computes.
    card_packets = driver.execute_script(
        "return document.querySelector('article.sink[data-sink=\"tone\"] [data-field=\"packets\"]').textContent;")
    assert card_packets.strip().isdigit() and int(card_packets) > 0, card_packets
    state = driver.execute_script("return window.sinkcast.players['tone'].state;")
    assert state == "playing"

    time.sleep(1.2)  # one more stats refresh, so the screenshot shows numbers everywhere
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "browser.png"
    shot.unlink(missing_ok=True)
    assert driver.save_screenshot(str(shot))
    assert shot.exists() and shot.stat().st_size > 0

    _stop_playing(driver, server, "tone")
    assert driver.execute_script("return window.sinkcast.players['tone'].state;") == "stopped"

    # No script errors on the way (network errors would show as SEVERE too; there were none).
    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, f"console errors: {severe}"


def test_reconnects_after_server_restart(driver: Any, server: Server) -> None:
    _open_page(driver, server)
    _button(driver, "tone", "play").click()
    before = _play_until_packets(driver, server, "tone", 50, timeout=20)

    code = server.stop()
    assert code == 0, f"the server exited with {code} on SIGINT:\n{server.output()}"
    restarted = time.monotonic()
    server.start()

    def replaying() -> dict[str, Any] | None:
        s = _stats(driver, "tone")
        if not s or s.get("connects", 0) <= before["connects"] or s.get("session") == before["session"]:
            return None
        return s if s.get("packetsReceived", 0) > 50 else None

    remaining = 30.0 - (time.monotonic() - restarted)  # includes the server start and the page backoff (up to 5 s)
    after = _wait_for(
        replaying, remaining,
        lambda: f"the page to play 'tone' again after the restart:\n{_page_state(driver, 'tone')}\n"
                f"console:\n{_console(driver)}\nserver:\n{server.output()}",
    )
    assert after["connectionState"] == "connected"
    print(f"playing again {time.monotonic() - restarted:.1f} s after the restart began; {after}")
    assert _listeners(server, "tone") == 1
    readings = _measure_frequency(driver, "tone", n=3)
    assert readings and all(abs(f - TONE_HZ) <= 5.0 for f in readings), readings

    _stop_playing(driver, server, "tone")


def test_a_failed_poll_leaves_a_playing_stream_alone(driver: Any, server: Server) -> None:
    # One failed GET /api/sinks (a proxy's 502) says nothing about the stream:
    # the page used to start every playing sink over when the next poll worked.
    _open_page(driver, server)
    _button(driver, "tone", "play").click()
    before = _play_until_packets(driver, server, "tone", 50, timeout=20)
    driver.execute_script("""
      const real = window.fetch;
      window.sinkcastPolls = 0;  // polls of the list since the failed one
      window.fetch = function (url, opts) {
        if (String(url).endsWith('/api/sinks') && window.sinkcastPolls++ === 0) {
          return Promise.resolve(new Response('bad gateway', { status: 502 }));
        }
        return real.apply(this, arguments);
      };""")
    # The third poll starts only once the second, the first to work again, has been handled.
    _wait_for(lambda: driver.execute_script("return window.sinkcastPolls;") >= 3, 15,
              lambda: f"two more polls after the failed one:\n{_page_state(driver, 'tone')}")
    after = _stats(driver, "tone")
    assert after is not None
    assert (after["session"], after["connects"]) == (before["session"], before["connects"]), (before, after)
    assert after["packetsReceived"] > before["packetsReceived"]
    assert driver.execute_script("return window.sinkcast.players.tone.state;") == "playing"


# Base64, as `openssl rand -base64` makes them: the page must keep the "+" (a
# URLSearchParams would turn it into a space) and the "/".
TOKEN = "s3+cr/et="
TOKEN_CONFIG = f"""
[server]
token = "{TOKEN}"

[sinks.tone]
channels = 1

[sources.a440]
type = "tone"
frequency_hz = 440.0
amplitude = 0.3

[[routes]]
source = "a440"
sink = "tone"
"""


def test_bearer_token_from_url_hash(driver: Any, tmp_path: Path) -> None:
    config = tmp_path / "sinkcast.toml"
    config.write_text(TOKEN_CONFIG)
    with running_server(tmp_path, extra_args=("--config", str(config)), token=TOKEN) as srv:
        # Without a token the server refuses the offer; the page says so and keeps retrying.
        _open_page(driver, srv, demo=False)
        _button(driver, "tone", "play").click()
        _wait_for(
            lambda: "401" in (driver.execute_script("return window.sinkcast.players.tone.error;") or ""), 10,
            lambda: f"a 401 shown for 'tone':\n{_page_state(driver, 'tone')}",
        )
        shown = driver.execute_script(
            "return document.querySelector('article.sink[data-sink=\"tone\"] [data-field=\"error\"]').textContent;")
        assert "401" in shown
        assert _listeners(srv, "tone") == 0

        # The token arrives in the fragment: the next retry carries it and plays.
        driver.execute_script("window.location.hash = 'token=' + arguments[0];", TOKEN)
        _play_until_packets(driver, srv, "tone", 50, timeout=15)
        assert _listeners(srv, "tone") == 1

        # And a page opened with #token=... plays from the first click.
        _open_page(driver, srv, demo=False, fragment="#token=" + TOKEN)
        _wait_for(lambda: _listeners(srv, "tone") == 0, 5,
                  lambda: f"the old page's session to end: {srv.sinks()['tone']}")
        _button(driver, "tone", "play").click()
        stats = _play_until_packets(driver, srv, "tone", 50, timeout=20)
        assert stats["connects"] == 1, stats
        _stop_playing(driver, srv, "tone")


# A stereo sink fed from a file of 16-bit stereo PCM (played at its pace): a
# 440 Hz tone on the left, silence on the right.
STEREO_AMPLITUDE = 0.4
STEREO_CONFIG = """
[sinks.lr]
channels = 2

[sources.left]
type = "pipe"
path = "{path}"
sample_rate = 48000
channels = 2
format = "s16le"

[[routes]]
source = "left"
sink = "lr"
"""


def _channel_levels(drv: Any, sink: str, n: int = 6) -> list[list[float]]:
    """RMS of each channel of the stream the page receives for `sink`: its
    MediaStream through a ChannelSplitter into one AnalyserNode per channel."""
    drv.execute_script(
        """
        const p = window.sinkcast.players[arguments[0]];
        const ctx = p.audioContext;
        const split = ctx.createChannelSplitter(2);
        const mute = ctx.createGain();
        mute.gain.value = 0;
        mute.connect(ctx.destination);
        ctx.createMediaStreamSource(p.stream).connect(split);
        const analysers = [0, 1].map((i) => {
          const a = ctx.createAnalyser();
          a.fftSize = 8192;
          split.connect(a, i);
          a.connect(mute);
          return a;
        });
        window.channelLevels = () => analysers.map((a) => {
          const buf = new Float32Array(a.fftSize);
          a.getFloatTimeDomainData(buf);
          let sum = 0;
          for (const x of buf) sum += x * x;
          return Math.sqrt(sum / buf.length);
        });
        """,
        sink,
    )
    time.sleep(1.0)  # let the analysers fill
    readings: list[list[float]] = []
    for _ in range(n):
        readings.append([float(x) for x in drv.execute_script("return window.channelLevels();")])
        time.sleep(0.3)
    return readings


def test_stereo_sink_plays_in_stereo_in_chromium(driver: Any, tmp_path: Path) -> None:
    # Chromium sets up its Opus decoder from its own offer, which asks for mono
    # unless the page adds stereo=1: it used to hear [0.141, 0.141], both sides
    # the average of left and right, instead of [0.283, 0].
    period = 1200  # frames: 11 whole cycles of 440 Hz at 48 kHz
    block = b"".join(
        struct.pack("<hh", round(STEREO_AMPLITUDE * 32767 * math.sin(2 * math.pi * TONE_HZ * i / 48000)), 0)
        for i in range(period)
    )
    pcm = tmp_path / "left-only.s16le"
    pcm.write_bytes(block * (60 * 48000 // period))  # 60 s, played from the server's start
    config = tmp_path / "sinkcast.toml"
    config.write_text(STEREO_CONFIG.format(path=pcm))
    with running_server(tmp_path, extra_args=("--config", str(config))) as srv:
        _open_page(driver, srv, demo=False)
        assert srv.sinks()["lr"]["channels"] == 2
        _button(driver, "lr", "play").click()
        stats = _play_until_packets(driver, srv, "lr", 50, timeout=20)
        assert stats["connectionState"] == "connected", stats
        offer = driver.execute_script("return window.sinkcast.players.lr.pc.localDescription.sdp;")

        readings = _channel_levels(driver, "lr")
        left = statistics.median(r[0] for r in readings)
        right = statistics.median(r[1] for r in readings)
        expected = STEREO_AMPLITUDE / math.sqrt(2)  # RMS of the sine
        fmtp = [line for line in offer.splitlines() if line.startswith("a=fmtp:")]
        print(f"RMS [left, right] {[round(left, 4), round(right, 4)]}, expected [{expected:.3f}, 0]; {fmtp}")
        assert 0.8 * expected < left < 1.2 * expected and right < 0.01, (
            f"RMS [left, right] {[left, right]}, expected [{expected:.3f}, 0]; readings {readings}; "
            f"the page's fmtp lines {fmtp}")

        _stop_playing(driver, srv, "lr")
