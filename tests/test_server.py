"""The WHEP server: conformance with aiortc as the WHEP client, the JSON API, metrics, the CLI."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import yarl
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from sinkcast.config import build_engine, demo_config, parse_config
from sinkcast.inputs import PipeInput
import sinkcast
import sinkcast.server
from sinkcast.server import SERVER_KEY, AcceptErrorReporter, describe_inputs, make_app, make_runner
from helpers_subprocess.common import free_port
from webrtc_peer import Listener, dominant_frequency



@pytest_asyncio.fixture
async def server() -> AsyncIterator[tuple[TestServer, ClientSession]]:
    engine = build_engine(demo_config())
    srv = TestServer(make_app(engine), host="127.0.0.1")
    await srv.start_server()
    async with ClientSession(base_url=str(srv.make_url("/"))) as http:
        yield srv, http
    await srv.close()


@pytest_asyncio.fixture
async def secured() -> AsyncIterator[ClientSession]:
    engine = build_engine(demo_config())
    srv = TestServer(make_app(engine, token="s3cret"), host="127.0.0.1")
    await srv.start_server()
    async with ClientSession(base_url=str(srv.make_url("/"))) as http:
        yield http
    await srv.close()


async def whep_offer() -> tuple[Listener, str]:
    listener = Listener()
    return listener, await listener.offer()


async def post_offer(http: ClientSession, offer: str) -> str:
    """POSTs an offer to 'tone'; returns the new session's Location."""
    async with http.post("/whep/tone", data=offer, headers={"Content-Type": "application/sdp"}) as r:
        assert r.status == 201, await r.text()
        return r.headers["Location"]


async def open_session(http: ClientSession) -> tuple[Listener, str]:
    """A listener with a WHEP session on 'tone', and the session's Location."""
    listener, offer = await whep_offer()
    return listener, await post_offer(http, offer)


ONE_CANDIDATE = "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"


@pytest.mark.asyncio
async def test_whep_post_plays_the_sink(server: tuple[TestServer, ClientSession]) -> None:
    _, http = server
    listener, offer = await whep_offer()
    try:
        async with http.post("/whep/tone", data=offer, headers={"Content-Type": "application/sdp"}) as r:
            assert r.status == 201
            assert r.content_type == "application/sdp"
            location = r.headers["Location"]
            assert location.startswith("/whep/tone/")
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert "application/trickle-ice-sdpfrag" in r.headers["Accept-Patch"]
            answer = await r.text()
        assert "a=candidate:" in answer and "127.0.0.1" in answer and "a=end-of-candidates" in answer
        await listener.accept_answer(answer)
        await listener.wait_seconds(2.0)
        assert dominant_frequency(listener.audio()[-48000:, 0], 48000) == pytest.approx(440.0, abs=1.0)
        async with http.get("/api/sinks") as r:
            sinks = {s["id"]: s for s in await r.json()}
        assert sinks["tone"]["listeners"] == 1 and sinks["music"]["listeners"] == 0

        ufrag = re.search(r"a=ice-ufrag:(\S+)", offer)
        assert ufrag
        frag = f"a=ice-ufrag:{ufrag.group(1)}\r\na=ice-pwd:y\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" \
               "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
        async with http.patch(location, data=frag, headers={"Content-Type": "application/trickle-ice-sdpfrag"}) as r:
            assert r.status == 204
        # An ICE restart (new credentials, or If-Match: *) is refused as WHEP/WHIP say, not ignored.
        restart = frag.replace(f"a=ice-ufrag:{ufrag.group(1)}", "a=ice-ufrag:fresh")
        async with http.patch(location, data=restart,
                              headers={"Content-Type": "application/trickle-ice-sdpfrag"}) as r:
            assert r.status == 422 and "ICE restarts are not supported" in await r.text()
        async with http.patch(location, data=frag,
                              headers={"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": "*"}) as r:
            assert r.status == 422
        async with http.patch(location, data=frag, headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415
        async with http.delete(location) as r:
            assert r.status == 200
        async with http.delete(location) as r:
            assert r.status == 404
        async with http.get("/api/sinks") as r:
            assert {s["id"]: s for s in await r.json()}["tone"]["listeners"] == 0
    finally:
        await listener.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "content_type", "body", "status", "reason"),
    [
        ("/whep/nope", "application/sdp", "v=0\r\n", 404, "unknown sink 'nope'"),
        ("/whep/tone", "text/plain", "v=0\r\n", 415, "application/sdp"),
        ("/whep/tone", "application/sdp", "x" * (70 * 1024), 413, ""),
        ("/whep/tone", "application/sdp", "this is not sdp", 400, "bad offer: malformed SDP"),
        ("/whep/tone", "application/sdp", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", 400, "bad offer"),
        ("/whep/tone/0000", "application/trickle-ice-sdpfrag", "", 404, "no WHEP session"),
    ],
)
async def test_whep_errors(
    server: tuple[TestServer, ClientSession], path: str, content_type: str, body: str, status: int, reason: str
) -> None:
    _, http = server
    method = http.patch if path.count("/") == 3 else http.post
    async with method(path, data=body, headers={"Content-Type": content_type}) as r:
        assert r.status == status
        assert reason in await r.text()
        assert r.headers["Access-Control-Allow-Origin"] == "*"
    async with http.get("/api/status") as r:
        assert (await r.json())["listeners"] == 0


@pytest.mark.asyncio
async def test_whep_post_says_503_when_the_server_cannot_take_a_listener() -> None:
    # The server's side, not the offer, is at fault (every port of the ICE
    # range is taken): 503 with Retry-After, so a player tries again later.
    held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    held.bind(("127.0.0.1", 0))
    port = held.getsockname()[1]
    engine = build_engine(parse_config({"ice": {"port_range": [port, port]}, "sinks": {"s": {}}}, "<test>"))
    srv = TestServer(make_app(engine), host="127.0.0.1")
    await srv.start_server()
    try:
        async with ClientSession(base_url=str(srv.make_url("/"))) as http:
            _, offer = await whep_offer()
            async with http.post("/whep/s", data=offer, headers={"Content-Type": "application/sdp"}) as r:
                assert r.status == 503
                assert r.headers["Retry-After"] == "5"
                assert f"no UDP port of port_range {port}-{port} is free" in await r.text()
            async with http.get("/api/status") as r:
                assert (await r.json())["listeners"] == 0
            held.close()  # the port is free again: the same offer is answered
            async with http.post("/whep/s", data=offer, headers={"Content-Type": "application/sdp"}) as r:
                assert r.status == 201
    finally:
        held.close()
        await srv.close()


@pytest.mark.asyncio
async def test_whep_post_is_answered_when_a_stun_server_never_replies() -> None:
    # The engine's end of candidates then comes some 20 s after its answer, and
    # every POST got 503 after 10 s: the answer now goes out with the candidates
    # gathered within open_listener's gather_timeout.
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hole.bind(("127.0.0.1", 0))
    cfg = {"ice": {"servers": [f"stun:127.0.0.1:{hole.getsockname()[1]}"]}, "sinks": {"s": {}}}
    srv = TestServer(make_app(build_engine(parse_config(cfg, "<test>"))), host="127.0.0.1")
    await srv.start_server()
    listener, offer = await whep_offer()
    try:
        async with ClientSession(base_url=str(srv.make_url("/"))) as http:
            async with http.post("/whep/s", data=offer, headers={"Content-Type": "application/sdp"}) as r:
                assert r.status == 201, await r.text()
                answer = await r.text()
            assert "a=candidate:" in answer and "127.0.0.1" in answer
            await listener.accept_answer(answer)
            await listener.wait_seconds(0.5)
    finally:
        await listener.close()
        hole.close()
        await srv.close()


@pytest.mark.asyncio
async def test_a_session_whose_bye_follows_its_answer_is_not_kept(server: tuple[TestServer, ClientSession]) -> None:
    # A bye right behind the answer's candidates (the peer failed at once, or
    # the sink went) was still in the session's queue when the server forgot
    # the session, and was dropped there: the WhepSession stayed for good.
    srv, http = server
    app = srv.app[SERVER_KEY]
    real_open = app.signaling.open_listener

    async def open_then_bye(target: str, offer: str, **options: Any) -> str:
        answer = await real_open(target, offer, **options)
        app.signaling._dispatch(target, "bye", "failed")  # as the engine's dispatcher hands it over
        return answer

    app.signaling.open_listener = open_then_bye  # type: ignore[method-assign]
    listener, offer = await whep_offer()
    try:
        async with http.post("/whep/tone", data=offer, headers={"Content-Type": "application/sdp"}) as r:
            assert r.status == 201, await r.text()
        assert app.sessions == {}
    finally:
        await listener.close()


@pytest.mark.asyncio
async def test_a_post_whose_client_left_before_the_answer_leaves_no_session() -> None:
    # A client that gives up while the engine answers never gets the Location
    # to DELETE, nor connects: the session used to stay until the engine's
    # connect_timeout (a burst of aborted POSTs left thousands open at once).
    # Served as `sinkcast serve` does (AppRunner: a handler runs on after its
    # client left; aiohttp's TestServer would cancel it).
    engine = build_engine(demo_config())
    app = make_app(engine)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    whep = app[SERVER_KEY]
    real_open = whep.signaling.open_listener
    client_gone = asyncio.Event()

    async def open_after_the_client_left(target: str, offer: str, **options: Any) -> str:
        answer = await real_open(target, offer, **options)
        await client_gone.wait()
        await asyncio.sleep(0.3)  # the server's side of the connection sees it closed
        return answer

    whep.signaling.open_listener = open_after_the_client_left  # type: ignore[method-assign]
    listener, offer = await whep_offer()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = offer.encode()
        writer.write(b"POST /whep/tone HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        deadline = time.monotonic() + 10
        while not engine.listeners():
            assert time.monotonic() < deadline, "the POST never opened a session"
            await asyncio.sleep(0.02)
        writer.close()
        await writer.wait_closed()
        client_gone.set()
        while engine.listeners():
            assert time.monotonic() < deadline, "the session of the abandoned POST is still open"
            await asyncio.sleep(0.02)
        assert whep.sessions == {}
    finally:
        await listener.close()
        await runner.cleanup()


async def arriving_in_pieces(text: str, pieces: int = 3) -> AsyncIterator[bytes]:
    """A request body that reaches the server in several TCP writes, as over a real network."""
    data = text.encode()
    step = len(data) // pieces + 1
    for i in range(0, len(data), step):
        yield data[i : i + step]
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_whep_reads_whole_bodies_that_arrive_in_pieces(server: tuple[TestServer, ClientSession]) -> None:
    # A browser's offer (3-6 KB) spans several TCP segments. The server used to
    # read only what had arrived: "400 bad offer", and a PATCH lost candidates.
    srv, http = server
    _, offer = await whep_offer()
    async with http.post("/whep/tone", data=arriving_in_pieces(offer),
                         headers={"Content-Type": "application/sdp"}) as r:
        assert r.status == 201, await r.text()
        location = r.headers["Location"]
    target = location.removeprefix("/whep/")
    sent: list[tuple[str, str]] = []
    signaling = srv.app[SERVER_KEY].signaling
    real_send = signaling.send

    async def recording_send(t: str, type: str, message: str) -> None:
        sent.append((t, message))
        await real_send(t, type, message)

    signaling.send = recording_send  # type: ignore[method-assign]
    frag = "a=mid:0\r\n" + "".join(f"a=candidate:{i} 1 udp 2130706431 127.0.0.1 {9 + i} typ host\r\n" for i in range(5))
    frag += "a=end-of-candidates\r\n"
    async with http.patch(location, data=arriving_in_pieces(frag),
                          headers={"Content-Type": "application/trickle-ice-sdpfrag"}) as r:
        assert r.status == 204
    assert [t for t, _ in sent] == [target] * 6
    assert [json.loads(m)["candidate"] for _, m in sent] == [
        f"candidate:{i} 1 udp 2130706431 127.0.0.1 {9 + i} typ host" for i in range(5)] + [""]
    too_big = "v=0\r\n" + "a=x\r\n" * 14000  # 70 KB, chunked: no Content-Length to refuse it by
    async with http.post("/whep/tone", data=arriving_in_pieces(too_big, 2),
                         headers={"Content-Type": "application/sdp"}) as r:
        assert r.status == 413


@pytest.mark.asyncio
async def test_whep_urls_carry_sink_ids_percent_encoded() -> None:
    # Sink ids are free text (not "/"): "a?b" in a raw URL would end the path.
    engine = sinkcast.AudioManager(bind_address="127.0.0.1")
    for sink_id in ("a?b", "café", "%41"):
        engine.add_sink(sink_id)
    srv = TestServer(make_app(engine), host="127.0.0.1")
    await srv.start_server()
    try:
        async with ClientSession(base_url=str(srv.make_url("/"))) as http:
            async with http.get("/api/sinks") as r:
                paths = {s["id"]: s["whep"] for s in await r.json()}
            assert paths == {"a?b": "/whep/a%3Fb", "café": "/whep/caf%C3%A9", "%41": "/whep/%2541"}
            for sink_id, path in paths.items():
                _, offer = await whep_offer()
                async with http.post(yarl.URL(path, encoded=True), data=offer,
                                     headers={"Content-Type": "application/sdp"}) as r:
                    assert r.status == 201
                    location = r.headers["Location"]
                assert location.startswith(path + "/")
                assert len(engine.listeners()) == 1 and engine.listeners()[0].startswith(sink_id + "/")
                async with http.delete(yarl.URL(location, encoded=True)) as r:
                    assert r.status == 200
                assert engine.listeners() == []
    finally:
        await srv.close()

@pytest.mark.asyncio
async def test_cors_preflight(server: tuple[TestServer, ClientSession]) -> None:
    _, http = server
    async with http.options("/whep/tone") as r:
        assert r.status == 204
        assert r.headers["Accept-Post"] == "application/sdp"
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
        assert "Location" in r.headers["Access-Control-Expose-Headers"]
    # A page on another origin that sends the token is preflighted on every
    # route that needs it, and on the list of sinks it polls with the token.
    for path in ("/api/sinks", "/api/status", "/metrics", "/whep/tone/0123"):
        async with http.options(path, headers={"Origin": "http://elsewhere.example",
                                               "Access-Control-Request-Method": "GET",
                                               "Access-Control-Request-Headers": "authorization"}) as r:
            assert r.status == 204, path
            assert "Authorization" in r.headers["Access-Control-Allow-Headers"], path
            assert "Accept-Post" not in r.headers, path


@pytest.mark.asyncio
async def test_a_patch_whose_session_ends_while_its_body_arrives_is_404(
    server: tuple[TestServer, ClientSession],
) -> None:
    # The session check passes on the headers; a DELETE lands before the body.
    srv, http = server
    listener, location = await open_session(http)
    try:
        frag = ONE_CANDIDATE.encode()
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        writer.write(b"PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/trickle-ice-sdpfrag\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (location.encode(), len(frag)))
        await writer.drain()
        await asyncio.sleep(0.3)
        async with http.delete(location) as r:
            assert r.status == 200
        writer.write(frag)
        await writer.drain()
        status_line = (await asyncio.wait_for(reader.read(), 10)).split(b"\r\n", 1)[0]
        writer.close()
        assert status_line == b"HTTP/1.1 404 Not Found", status_line
    finally:
        await listener.close()


@pytest.mark.asyncio
async def test_a_session_the_engine_ended_gets_404_on_patch(server: tuple[TestServer, ClientSession]) -> None:
    # The engine's bye may still be on its way to the server when a PATCH comes.
    srv, http = server
    listener, location = await open_session(http)
    try:
        target = location.removeprefix("/whep/")
        engine = srv.app[SERVER_KEY].engine
        srv.app[SERVER_KEY].signaling.on_message = lambda *_: None  # the bye never reaches the server
        engine.handle_incoming_webrtc_signaling_message(target, "bye", "")
        async with http.patch(location, data=ONE_CANDIDATE,
                              headers={"Content-Type": "application/trickle-ice-sdpfrag"}) as r:
            assert r.status == 404, await r.text()
        assert target not in srv.app[SERVER_KEY].sessions
    finally:
        await listener.close()


@pytest.mark.asyncio
async def test_bearer_token(secured: ClientSession) -> None:
    listener, offer = await whep_offer()
    try:
        async with secured.post("/whep/tone", data=offer, headers={"Content-Type": "application/sdp"}) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"] == "Bearer"
        headers = {"Content-Type": "application/sdp", "Authorization": "Bearer wrong"}
        async with secured.post("/whep/tone", data=offer, headers=headers) as r:
            assert r.status == 401
        headers["Authorization"] = "bearer s3cret"  # the scheme is case-insensitive
        async with secured.post("/whep/tone", data=offer, headers=headers) as r:
            assert r.status == 201
        # The counters need the token too (/metrics names each session); the
        # page and its list of sinks do not, so the page can say what is missing.
        for path in ("/api/status", "/metrics"):
            async with secured.get(path) as r:
                assert r.status == 401, path
            async with secured.get(path, headers={"Authorization": "Bearer s3cret"}) as r:
                assert r.status == 200, path
        async with secured.get("/metrics", headers={"Authorization": "Bearer \udcff"}) as r:
            assert r.status == 401  # a byte that is not UTF-8: refused, not a 500
        for path in ("/", "/api/sinks"):
            async with secured.get(path) as r:
                assert r.status == 200, path
    finally:
        await listener.close()


@pytest.mark.asyncio
async def test_status_and_metrics(server: tuple[TestServer, ClientSession]) -> None:
    _, http = server
    await asyncio.sleep(0.2)  # let the clocks mix a few periods
    async with http.get("/api/status") as r:
        status = await r.json()
    assert set(status["sinks"]) == {"music", "intercom", "tone"}
    assert status["sources"]["a440"]["sinks"] == ["intercom", "music", "tone"]
    async with http.get("/metrics") as r:
        assert r.status == 200 and r.content_type == "text/plain"
        assert r.headers["Access-Control-Allow-Origin"] == "*"  # as every route (a dashboard in a page may read it)
        text = await r.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['sinkcast_sink_frames_mixed_total{sink="music"}'] > 0
    assert 'sinkcast_source_underruns_total{source="hiss"}' in samples
    assert "# TYPE sinkcast_sink_listeners gauge" in text
    assert samples['sinkcast_sink_clock_errors_total{sink="music"}'] == 0
    assert samples["sinkcast_signaling_backlog"] == 0  # the adapter's callback only schedules
    # Counters in full, not rounded to six digits (a rate() over them needs every unit).
    from sinkcast.server import prometheus_text

    big = {"sinks": {"k": {"frames_mixed": 4147200123, "late_periods": 0, "clock_errors": 0, "clipped_samples": 0,
                           "frames_encoded": 0, "peak": 0.123456789, "listeners": {}}}, "live_peers": 0,
           "signaling_backlog": 0}
    assert 'sinkcast_sink_frames_mixed_total{sink="k"} 4147200123\n' in prometheus_text(big)
    assert 'sinkcast_sink_peak{sink="k"} 0.123456789\n' in prometheus_text(big)


@pytest.mark.asyncio
async def test_page_is_served(server: tuple[TestServer, ClientSession]) -> None:
    _, http = server
    async with http.get("/") as r:
        assert r.status == 200
        assert "<html" in (await r.text()).lower()
    async with http.get("/static/app.js") as r:
        assert r.status == 200


def open_files_limit(pid: int) -> tuple[str, str]:
    """The soft and hard "Max open files" of a process, as /proc shows them."""
    with open(f"/proc/{pid}/limits") as f:
        line = next(line for line in f if line.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return soft, hard


def test_cli_serve_runs_the_demo_and_stops_on_ctrl_c() -> None:
    # Started with a soft file descriptor limit of 512, as a shell with a low
    # `ulimit -n` would: the server raises it to the hard limit (each listener
    # needs a socket).
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard == resource.RLIM_INFINITY or hard > 512
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sinkcast", "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard)),
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sinks", timeout=1) as r:
                    sinks = json.load(r)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(f"server did not come up: {proc.stdout.read() if proc.stdout else ''}")
                time.sleep(0.2)
        assert {s["id"] for s in sinks} >= {"music", "intercom"}
        soft_now, hard_now = open_files_limit(proc.pid)
        assert soft_now == hard_now and soft_now != "512"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0, out
        assert f"http://127.0.0.1:{port}/" in out
        assert "file descriptor limit raised from 512 to" in out
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_serve_without_aiohttp_says_which_extra_to_install() -> None:
    # `pip install .` has no aiohttp; serve used to end in a ModuleNotFoundError traceback.
    code = "import sys; sys.modules['aiohttp'] = None; from sinkcast.cli import main; sys.exit(main(['serve']))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == (
        "sinkcast: serve needs aiohttp, which is not installed: pip install 'sinkcast[server]'")


def test_cli_reports_a_bad_config(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "bad.toml")
    with open(path, "w") as f:
        f.write("[sinks.kitchen]\nchannels = 3\n")
    proc = subprocess.run([sys.executable, "-m", "sinkcast", "serve", "--config", path],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert f"{path}: sinks.kitchen.channels: must be 1 or 2, got 3" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "sinkcast", "serve", "--port", "70000"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "--port: must be 0 to 65535, got 70000" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_announces_the_address_it_bound() -> None:
    # Port 0 takes any free port: the announcement names the one it got.
    proc = subprocess.Popen([sys.executable, "-m", "sinkcast", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "sinkcast: open " in line:
                break
        match = re.search(r"open http://127\.0\.0\.1:(\d+)/ in a browser", "".join(lines))
        assert match, lines
        port = int(match.group(1))
        assert port != 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sinks", timeout=5) as r:
            assert r.status == 200 and r.headers["Sinkcast-Instance"]
        assert any("media (ICE) on 127.0.0.1" in line for line in lines), lines
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()

    # A port in use: an error, and no address announced that does not work.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc2 = subprocess.run([sys.executable, "-m", "sinkcast", "serve", "--port", str(port)],
                               capture_output=True, text=True, timeout=30)
    assert proc2.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc2.stderr, proc2.stderr
    assert "sinkcast: open" not in proc2.stdout and "Traceback" not in proc2.stderr
    # Nor what it would have served: it served nothing.
    assert "serving" not in proc2.stdout and "media (ICE)" not in proc2.stdout, proc2.stdout


@pytest.mark.parametrize("seconds", ["-1", "0", "nan", "inf"])
def test_cli_demo_refuses_a_duration_that_is_not_a_positive_number(seconds: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "sinkcast", "demo", "--seconds", seconds],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert f"--seconds: must be a number of seconds above 0, got {seconds}" in proc.stderr


@pytest.mark.asyncio
async def test_status_and_metrics_include_pipe_inputs(tmp_path: Path) -> None:
    # Pipe readers live in Python, beside the engine: their stats join the engine's.
    raw = tmp_path / "tone.f32"
    (0.25 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)).astype("<f4").tofile(raw)
    cfg = parse_config({
        "sinks": {"out": {"channels": 1}},
        "sources": {"line": {"type": "pipe", "path": str(raw), "sample_rate": 48000, "channels": 1,
                             "format": "f32le"}},
        "routes": [{"source": "line", "sink": "out"}],
    }, "pipe.toml")
    pipes: dict[str, PipeInput] = {}
    srv = TestServer(make_app(build_engine(cfg, pipe_inputs=pipes), pipe_inputs=pipes), host="127.0.0.1")
    await srv.start_server()
    try:
        async with ClientSession(base_url=str(srv.make_url("/"))) as http:
            deadline = time.monotonic() + 10
            while True:
                status = await (await http.get("/api/status")).json()
                if status["pipe_inputs"]["line"]["frames"] > 0:
                    break
                assert time.monotonic() < deadline, status["pipe_inputs"]
                await asyncio.sleep(0.1)
            assert status["pipe_inputs"]["line"]["error"] is None
            assert status["pipe_inputs"]["line"]["bytes"] == 4 * status["pipe_inputs"]["line"]["frames"]
            text = await (await http.get("/metrics")).text()
            match = re.search(r'^sinkcast_pipe_input_frames_total\{source="line"\} (\S+)$', text, re.M)
            assert match and float(match.group(1)) > 0, text
            # An input that has ended (or failed) feeds nothing more: /metrics says so, to alert on.
            assert re.search(r'^sinkcast_pipe_input_eof\{source="line"\} 0$', text, re.M), text
            while not status["pipe_inputs"]["line"]["eof"]:  # the file plays for 1 s
                assert time.monotonic() < deadline, status["pipe_inputs"]
                await asyncio.sleep(0.1)
                status = await (await http.get("/api/status")).json()
            text = await (await http.get("/metrics")).text()
            assert re.search(r'^sinkcast_pipe_input_eof\{source="line"\} 1$', text, re.M), text
            assert re.search(r'^sinkcast_pipe_input_error\{source="line"\} 0$', text, re.M), text
    finally:
        await srv.close()


@pytest.mark.asyncio
async def test_a_pipe_reader_added_after_the_app_is_made_is_reported(tmp_path: Path) -> None:
    # The server keeps the mapping it is given, even an empty one, so a reader added later shows up.
    from sinkcast.inputs import add_pipe_source

    raw = tmp_path / "tone.f32"
    (0.25 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)).astype("<f4").tofile(raw)
    eng = build_engine(parse_config({"sinks": {"out": {"channels": 1}}}, "late.toml"))
    pipes: dict[str, PipeInput] = {}
    srv = TestServer(make_app(eng, pipe_inputs=pipes), host="127.0.0.1")
    await srv.start_server()
    try:
        pipes["line"] = add_pipe_source(eng, "line", str(raw), sample_rate=48000, channels=1, sample_format="f32le")
        async with ClientSession(base_url=str(srv.make_url("/"))) as http:
            status = await (await http.get("/api/status")).json()
            assert "line" in status["pipe_inputs"], status["pipe_inputs"]
    finally:
        await srv.close()


@pytest.mark.asyncio
async def test_a_fifo_pipe_input_takes_writer_after_writer(tmp_path: Path) -> None:
    # It went silent for good once its first writer closed it, and /metrics showed nothing.
    fifo = tmp_path / "line.fifo"
    os.mkfifo(fifo)
    cfg = parse_config({
        "sinks": {"out": {"channels": 1}},
        "sources": {"line": {"type": "pipe", "path": str(fifo), "sample_rate": 48000, "channels": 1}},
        "routes": [{"source": "line", "sink": "out"}],
    }, "fifo.toml")
    pipes: dict[str, PipeInput] = {}
    srv = TestServer(make_app(build_engine(cfg, pipe_inputs=pipes), pipe_inputs=pipes), host="127.0.0.1")
    await srv.start_server()
    try:
        async with ClientSession(base_url=str(srv.make_url("/"))) as http:
            for writer in (1, 2):
                # Non-blocking: a FIFO nobody reads refuses it (ENXIO) instead of hanging the test.
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                os.write(fd, bytes(2 * 480))
                os.close(fd)
                deadline = time.monotonic() + 10
                while pipes["line"].stats()["writers_ended"] < writer:
                    assert time.monotonic() < deadline, pipes["line"].stats()
                    await asyncio.sleep(0.05)
            text = await (await http.get("/metrics")).text()
            assert re.search(r'^sinkcast_pipe_input_frames_total\{source="line"\} 960$', text, re.M), text
            assert re.search(r'^sinkcast_pipe_input_writers_ended_total\{source="line"\} 2$', text, re.M), text
            assert re.search(r'^sinkcast_pipe_input_eof\{source="line"\} 0$', text, re.M), text
    finally:
        await srv.close()


TRICKLE = {"Content-Type": "application/trickle-ice-sdpfrag"}


def candidates(first: int, count: int) -> str:
    return "".join(f"a=candidate:{i} 1 udp 2130706431 127.0.0.1 {20000 + i} typ host\r\n"
                   for i in range(first, first + count))


@pytest.mark.asyncio
async def test_a_patch_is_checked_whole_before_any_of_it_is_applied(server: tuple[TestServer, ClientSession]) -> None:
    # A fragment of 4 good candidates and a bad one got 400, but the 4 were applied.
    _, http = server
    listener, offer = await whep_offer()
    try:
        location = await post_offer(http, offer)
        in_offer = offer.count("a=candidate:")
        async with http.patch(location, data="a=mid:0\r\n" + candidates(0, 4) + "a=candidate:garbage\r\n",
                              headers=TRICKLE) as r:
            assert r.status == 400
            assert 'bad candidate: malformed candidate "candidate:garbage"' in await r.text()
        # None of the 4 was taken: the session still has room for all 64 (the engine's cap)...
        async with http.patch(location, data="a=mid:0\r\n" + candidates(10, 64 - in_offer), headers=TRICKLE) as r:
            assert r.status == 204, await r.text()
        # ...and not one more; refused whole, not after part of it was applied.
        async with http.patch(location, data="a=mid:0\r\n" + candidates(100, 1), headers=TRICKLE) as r:
            assert r.status == 400
            assert "too many remote candidates for one session (at most 64" in await r.text()
    finally:
        await listener.close()


@pytest.mark.parametrize(
    ("candidate", "problem"),
    [
        ("candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", None),
        ("candidate:1 1 UDP 2130706431 0c1e3f2a-4d5b-4c6d-8e7f-9a0b1c2d3e4f.local 50000 typ host generation 0", None),
        ("candidate:1 1 udp 2130706431 ::1 9 typ host", None),
        ("candidate:1 1 udp 2130706431 127.0.0.1 9 host", "malformed candidate"),
        ("candidate:1 1 udp 2130706431 127.0.0.1", "malformed candidate"),
        ("candidate:1 x udp 2130706431 127.0.0.1 9 typ host", "malformed candidate"),
        ("candidate:1 1 udp 99999999999 127.0.0.1 9 typ host", "malformed candidate"),
        ("candidate:1 1 udp 2130706431 127.0.0.1 70000 typ host", "port '70000' is not a port number"),
        ("candidate:1 1 udp 2130706431 example.org 9 typ host", "address 'example.org' is not an IP address"),
    ],
)
def test_candidate_problem_says_what_the_engine_would_refuse(candidate: str, problem: str | None) -> None:
    """The check the server makes of a whole PATCH before it sends any of it:
    the engine's, so that the two cannot disagree."""
    eng = sinkcast.AudioManager(bind_address="127.0.0.1")
    try:
        eng.add_sink("s", channels=1)
        eng.set_python_webrtc_signaling_callback(lambda *args: None)
        eng.handle_incoming_webrtc_signaling_message("s/l", "request_offer", "")
        message = json.dumps({"candidate": candidate, "sdpMid": "0"})
        found = eng.candidate_problem(message)
        assert found is None if problem is None else (found is not None and problem in found), found
        if problem is None:
            eng.handle_incoming_webrtc_signaling_message("s/l", "candidate", message)
        else:
            with pytest.raises(sinkcast.SignalingError, match="candidate"):
                eng.handle_incoming_webrtc_signaling_message("s/l", "candidate", message)
    finally:
        eng.shutdown()


async def start_runner(engine: sinkcast.AudioManager) -> tuple[web.AppRunner, int]:
    runner = make_runner(make_app(engine))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


async def read_to_eof(reader: asyncio.StreamReader, timeout: float = 10.0) -> bytes:
    """What the server sends until it closes the connection (TimeoutError if it does not)."""
    return await asyncio.wait_for(reader.read(), timeout)


@pytest.mark.asyncio
async def test_idle_and_half_sent_requests_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    # aiohttp's default keep-alive (an hour) and no deadline on a request's body
    # let a client hold connections, and the server's descriptors, for good.
    monkeypatch.setattr(sinkcast.server, "KEEPALIVE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(sinkcast.server, "BODY_TIMEOUT_S", 0.5)
    runner, port = await start_runner(build_engine(demo_config()))
    try:
        idle = await asyncio.open_connection("127.0.0.1", port)
        half_head = await asyncio.open_connection("127.0.0.1", port)
        half_head[1].write(b"GET /api/sinks HTTP/1.1\r\nHost: x\r\n")
        half_body = await asyncio.open_connection("127.0.0.1", port)
        half_body[1].write(b"POST /whep/music HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\n"
                           b"Content-Length: 100\r\n\r\nv=0")
        kept = await asyncio.open_connection("127.0.0.1", port)
        kept[1].write(b"GET /api/sinks HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await kept[0].readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        assert await read_to_eof(idle[0]) == b""
        assert await read_to_eof(half_head[0]) == b""
        assert (await read_to_eof(half_body[0])).startswith(b"HTTP/1.1 408")
        await read_to_eof(kept[0])  # the rest of the response, then the close
        for _, writer in (idle, half_head, half_body, kept):
            writer.close()
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_client_errors_are_logged_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    # A client resetting mid-body and an over-long request line were logged with tracebacks.
    runner, port = await start_runner(build_engine(demo_config()))
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.server"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
            assert (await read_to_eof(reader)).startswith(b"HTTP/1.0 400")
            writer.close()
            for _ in range(3):
                sock = socket.create_connection(("127.0.0.1", port))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.sendall(b"POST /whep/music HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\n"
                             b"Content-Length: 5000\r\n\r\nv=0\r\n")
                await asyncio.sleep(0.1)
                sock.close()  # a reset, mid-body
            await asyncio.sleep(0.5)
        records = [r for r in caplog.records if r.name == "aiohttp.server"]
        assert records, "the over-long request line is still said"
        for record in records:
            assert record.exc_info is None and "\n" not in record.getMessage(), record.getMessage()
        assert any("LineTooLong" in r.getMessage() for r in records)
        assert not any("ConnectionResetError" in r.getMessage() for r in records)  # a reset is no news
    finally:
        await runner.cleanup()


class FakeLoop:
    def __init__(self) -> None:
        self.now = 0.0
        self.defaulted: list[dict[str, Any]] = []

    def time(self) -> float:
        return self.now

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.defaulted.append(context)


def test_running_out_of_descriptors_is_said_once_in_a_while(capsys: pytest.CaptureFixture[str]) -> None:
    # asyncio logs each failed accept() with a traceback, many times a second: megabytes of stderr.
    report = AcceptErrorReporter(interval=10.0)
    loop = FakeLoop()
    context = {"message": "socket.accept() out of system resource",
               "exception": OSError(errno.EMFILE, "Too many open files")}
    for _ in range(500):
        report(loop, context)  # type: ignore[arg-type]
    loop.now = 11.0
    report(loop, context)  # type: ignore[arg-type]
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "sinkcast: cannot accept HTTP connections: Too many open files; idle connections close after 15 s",
        "sinkcast: cannot accept HTTP connections: Too many open files (499 more times since the last report); "
        "idle connections close after 15 s",
    ]
    other = {"message": "something else", "exception": RuntimeError("real")}
    report(loop, other)  # type: ignore[arg-type]
    assert loop.defaulted == [other]  # every other error is reported as before


def test_startup_says_where_each_network_input_listens() -> None:
    # With --host 0.0.0.0 an input without bind_address stays on 127.0.0.1, and nothing said so.
    eng = sinkcast.AudioManager(realtime=False)
    try:
        port = eng.add_rtp_source("studio", port=0)
        assert describe_inputs(eng) == [
            f"input 'studio': rtp on UDP 127.0.0.1:{port} (this machine only: set its bind_address to receive "
            "from the network)"]
    finally:
        eng.shutdown()
