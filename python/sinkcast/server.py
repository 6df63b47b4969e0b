"""`sinkcast serve`: WHEP endpoints per sink, a browser page, a JSON API and Prometheus metrics.

Routes (their names are fixed by the project's design):
  GET    /                      the player page
  GET    /api/sinks             the sinks, as JSON
  GET    /api/status            every counter of the engine, as JSON
  GET    /metrics               Prometheus text format
  POST   /whep/{sink_id}        WHEP (draft-ietf-wish-whep): SDP offer in, 201 + SDP answer + Location out
  PATCH  /whep/{sink_id}/{id}   trickle ICE (application/trickle-ice-sdpfrag)
  DELETE /whep/{sink_id}/{id}   end the session
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import secrets
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_runner import GracefulExit

from sinkcast._errors import LocalResourceError, SignalingError, UnknownSinkError
from sinkcast._sinkcast import AudioManager
from sinkcast.aio import AsyncSignaling
from sinkcast.config import ServerConfig, bearer_token_problem
from sinkcast.inputs import PipeInput

WEB_DIR = Path(__file__).with_name("web")
MAX_SDP_BYTES = 64 * 1024
# The engine's cap on one session's remote candidates, its offer's included.
MAX_REMOTE_CANDIDATES = 64
# Seconds an HTTP connection may sit idle (before its first request, between
# requests, or with a request's head still incomplete) before it is closed;
# aiohttp's default, an hour, let idle clients hold the server's descriptors.
KEEPALIVE_TIMEOUT_S = 15.0
# Seconds a client has to send a request's body (an SDP offer is a few KiB).
BODY_TIMEOUT_S = 10.0
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, Link, Accept-Patch, ETag, Sinkcast-Instance",
}

ENGINE_KEY = web.AppKey("engine", AudioManager)
SERVER_KEY: web.AppKey["SinkcastServer"] = web.AppKey("server")


@dataclass
class WhepSession:
    sink_id: str
    session_id: str
    ice_ufrag: str | None = None  # the player's, from its offer: a PATCH with another one is an ICE restart
    remote_candidates: int = 0  # the player's candidates the engine took, its offer's included

    @property
    def target(self) -> str:
        return f"{self.sink_id}/{self.session_id}"

    @property
    def location(self) -> str:
        return f"{whep_path(self.sink_id)}/{self.session_id}"


def whep_path(sink_id: str) -> str:
    """The sink's WHEP endpoint, its id percent-encoded (a sink may be called "a?b" or "café")."""
    return "/whep/" + urllib.parse.quote(sink_id, safe="")


def ice_ufrag(sdp: str) -> str | None:
    """The first a=ice-ufrag of an SDP document or fragment."""
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if line.startswith("a=ice-ufrag:"):
            return line[len("a=ice-ufrag:") :].strip()
    return None


async def read_body(request: web.Request) -> bytes:
    """The whole request body, however its bytes arrive; 413 past MAX_SDP_BYTES,
    408 when it does not arrive within BODY_TIMEOUT_S (a client trickling a body
    would hold its connection, and a descriptor, for good).

    (`request.content.read(n)` returns only what has arrived so far: an offer
    split over TCP segments would be cut short.)
    """
    if request.content_length is not None and request.content_length > MAX_SDP_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_SDP_BYTES, request.content_length, headers=CORS_HEADERS)

    async def read() -> bytes:
        body = bytearray()
        while chunk := await request.content.read(MAX_SDP_BYTES + 1 - len(body)):
            body += chunk
            if len(body) > MAX_SDP_BYTES:
                raise web.HTTPRequestEntityTooLarge(MAX_SDP_BYTES, len(body), headers=CORS_HEADERS)
        return bytes(body)

    try:
        return await asyncio.wait_for(read(), BODY_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise web.HTTPRequestTimeout(text=f"the request body did not arrive within {BODY_TIMEOUT_S:g} s\n",
                                     headers={"Connection": "close", **CORS_HEADERS}) from None
    except ConnectionError:
        # The client reset (or half-closed) the connection mid-body: its mistake,
        # not the server's, so no traceback in the log. (The reply rarely reaches it.)
        raise web.HTTPBadRequest(text="the request body was cut short\n",
                                 headers={"Connection": "close", **CORS_HEADERS}) from None


class SinkcastServer:
    """The HTTP face of one AudioManager. Create it inside the running loop (see `make_app`)."""

    def __init__(self, engine: AudioManager, token: str | None = None, answer_timeout: float = 10.0,
                 pipe_inputs: Mapping[str, PipeInput] | None = None) -> None:
        self.engine = engine
        # The mapping itself, not a copy: readers added to it later are reported too.
        self.pipe_inputs = pipe_inputs if pipe_inputs is not None else {}
        self.token = token
        self.answer_timeout = answer_timeout
        self.sessions: dict[str, WhepSession] = {}
        # New at every start, on /api/sinks and each answer: the page tells a
        # session of a restarted server (gone with it) from a poll that merely failed.
        self.instance = secrets.token_hex(8)
        self.signaling = AsyncSignaling(engine, on_message=self._on_engine_message)

    # -- engine events --------------------------------------------------------------

    def _on_engine_message(self, target: str, type: str, message: str) -> None:
        if type == "bye":
            # The listener's peer failed or left, or its sink went away.
            self.sessions.pop(target, None)

    # -- helpers ----------------------------------------------------------------------

    def _check_token(self, request: web.Request) -> None:
        if self.token is None:
            return
        scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
        given = credentials.strip().encode("utf-8", "surrogateescape")  # whatever bytes a client sent
        # The scheme is case-insensitive (RFC 9110, 11.1).
        if scheme.lower() != "bearer" or not secrets.compare_digest(given, self.token.encode()):
            raise web.HTTPUnauthorized(
                text="missing or wrong bearer token\n", headers={"WWW-Authenticate": "Bearer", **CORS_HEADERS}
            )

    def _session(self, request: web.Request) -> WhepSession:
        target = f"{request.match_info['sink_id']}/{request.match_info['session_id']}"
        session = self.sessions.get(target)
        if session is None:
            raise web.HTTPNotFound(text=f"no WHEP session {target}\n", headers=CORS_HEADERS)
        return session

    # -- WHEP -------------------------------------------------------------------------

    async def whep_post(self, request: web.Request) -> web.Response:
        self._check_token(request)
        sink_id = request.match_info["sink_id"]
        if sink_id not in self.engine.sinks():
            raise web.HTTPNotFound(text=f"unknown sink '{sink_id}'\n", headers=CORS_HEADERS)
        if request.content_type != "application/sdp":
            raise web.HTTPUnsupportedMediaType(
                text=f"the offer must be application/sdp, got {request.content_type}\n", headers=CORS_HEADERS
            )
        body = await read_body(request)
        try:
            offer = body.decode("utf-8")
        except UnicodeDecodeError:
            raise web.HTTPBadRequest(text="the offer is not UTF-8 text\n", headers=CORS_HEADERS) from None
        session = WhepSession(sink_id, secrets.token_hex(8), ice_ufrag(offer),
                              remote_candidates=offer.count("\na=candidate:"))
        try:
            answer = await self.signaling.open_listener(session.target, offer, timeout=self.answer_timeout)
        except UnknownSinkError:
            raise web.HTTPNotFound(text=f"unknown sink '{sink_id}'\n", headers=CORS_HEADERS) from None
        except LocalResourceError as e:  # this server's fault, and maybe not for long
            raise web.HTTPServiceUnavailable(
                text=f"cannot take another listener now: {e}\n", headers={**CORS_HEADERS, "Retry-After": "5"}
            ) from None
        except SignalingError as e:
            raise web.HTTPBadRequest(text=f"bad offer: {e}\n", headers=CORS_HEADERS) from None
        except TimeoutError:  # open_listener has closed the session
            raise web.HTTPServiceUnavailable(text="the engine did not answer in time\n", headers=CORS_HEADERS) from None
        if request.transport is None or request.transport.is_closing():
            # The client gave up while the engine answered: nobody will get the
            # Location to DELETE, nor connect. Closed now, not at connect_timeout.
            await self.signaling.close_listener(session.target)
            raise web.HTTPServiceUnavailable(text="the client went away\n", headers=CORS_HEADERS)
        # Registered first: forget() hands the session's unread messages (a bye
        # that came right after its candidates) to _on_engine_message at once.
        self.sessions[session.target] = session
        self.signaling.forget(session.target)
        return web.Response(
            status=201,
            body=answer.encode(),
            content_type="application/sdp",
            headers={"Location": session.location, "Accept-Patch": "application/trickle-ice-sdpfrag",
                     "Sinkcast-Instance": self.instance, **CORS_HEADERS},
        )

    async def whep_patch(self, request: web.Request) -> web.Response:
        self._check_token(request)
        session = self._session(request)
        if request.content_type != "application/trickle-ice-sdpfrag":
            raise web.HTTPUnsupportedMediaType(
                text=f"expected application/trickle-ice-sdpfrag, got {request.content_type}\n", headers=CORS_HEADERS
            )
        body = (await read_body(request)).decode("utf-8", "replace")
        self._session(request)  # it may have ended while the body arrived
        new_ufrag = ice_ufrag(body)
        if request.headers.get("If-Match", "").strip() == "*" or (
            new_ufrag is not None and session.ice_ufrag is not None and new_ufrag != session.ice_ufrag
        ):
            # WHEP, like WHIP (RFC 9725, 4.3.2): a server without ICE restarts says 422.
            raise web.HTTPUnprocessableEntity(
                text="ICE restarts are not supported: POST a new offer to reconnect\n", headers=CORS_HEADERS
            )
        mid = "0"
        candidates: list[tuple[str, str]] = []  # (mid, "candidate:...")
        ended = False
        for line in body.replace("\r\n", "\n").split("\n"):
            if line.startswith("a=mid:"):
                mid = line[len("a=mid:") :].strip()
            elif line.startswith("a=candidate:"):
                candidates.append((mid, line[2:].strip()))
            elif line.strip() == "a=end-of-candidates":
                ended = True
        # The engine takes candidates one at a time: the whole fragment is checked
        # first (by the engine's own parse), so that a 400 means that none of it was applied.
        messages = [json.dumps({"candidate": candidate, "sdpMid": candidate_mid, "sdpMLineIndex": 0})
                    for candidate_mid, candidate in candidates]
        for message in messages:
            if problem := self.engine.candidate_problem(message):
                raise web.HTTPBadRequest(text=f"bad candidate: {problem}\n", headers=CORS_HEADERS)
        if session.remote_candidates + len(candidates) > MAX_REMOTE_CANDIDATES:
            raise web.HTTPBadRequest(
                text=f"too many remote candidates for one session (at most {MAX_REMOTE_CANDIDATES}, the offer's "
                     f"included; {session.remote_candidates} taken so far, {len(candidates)} more sent)\n",
                headers=CORS_HEADERS)
        try:
            for message in messages:
                await self.signaling.send(session.target, "candidate", message)
                session.remote_candidates += 1
            if ended:
                await self.signaling.send(session.target, "candidate", json.dumps({"candidate": "", "sdpMid": mid}))
        except SignalingError as e:
            # The session may have ended meanwhile (a DELETE, or the engine's bye on its way here).
            if session.target not in await asyncio.to_thread(self.engine.listeners):
                self.sessions.pop(session.target, None)
                raise web.HTTPNotFound(text=f"WHEP session {session.target} has ended\n",
                                       headers=CORS_HEADERS) from None
            raise web.HTTPBadRequest(text=f"bad candidate: {e}\n", headers=CORS_HEADERS) from None
        return web.Response(status=204, headers=CORS_HEADERS)

    async def whep_delete(self, request: web.Request) -> web.Response:
        self._check_token(request)
        session = self._session(request)
        self.sessions.pop(session.target, None)
        await self.signaling.close_listener(session.target)
        return web.Response(status=200, headers=CORS_HEADERS)

    async def options(self, request: web.Request) -> web.Response:
        headers = dict(CORS_HEADERS)
        if "sink_id" in request.match_info and "session_id" not in request.match_info:
            headers["Accept-Post"] = "application/sdp"
        return web.Response(status=204, headers=headers)

    # -- API ------------------------------------------------------------------------------

    async def api_sinks(self, request: web.Request) -> web.Response:
        # Open: the page lists the sinks before it has the token (it then says
        # that playing needs one); ids, channels and levels only.
        stats = await asyncio.to_thread(self.engine.stats)
        sinks = [
            {
                "id": sink_id,
                "channels": s["channels"],
                "frame_ms": s["frame_ms"],
                "listeners": len(s["listeners"]),
                "peak": s["peak"],
                "whep": whep_path(sink_id),
            }
            for sink_id, s in stats["sinks"].items()
        ]
        return web.json_response(sinks, headers={"Sinkcast-Instance": self.instance, **CORS_HEADERS})

    async def api_status(self, request: web.Request) -> web.Response:
        self._check_token(request)
        stats = await asyncio.to_thread(self.stats)
        return web.json_response(stats, headers=CORS_HEADERS)

    async def metrics(self, request: web.Request) -> web.Response:
        self._check_token(request)  # it names every session
        stats = await asyncio.to_thread(self.stats)
        return web.Response(text=prometheus_text(stats), content_type="text/plain", charset="utf-8",
                            headers={"Cache-Control": "no-store", **CORS_HEADERS})

    def stats(self) -> dict[str, Any]:
        """The engine's stats, plus those of the pipe readers feeding it (they live in Python)."""
        stats = self.engine.stats()
        stats["pipe_inputs"] = {source_id: reader.stats() for source_id, reader in self.pipe_inputs.items()}
        return stats

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_DIR / "index.html")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    # Counters in full: "%g" printed 4147200123 as 4.1472e+09.
    return str(value) if isinstance(value, int) else repr(float(value))


def prometheus_text(stats: dict[str, Any]) -> str:
    """The engine's counters in the Prometheus text exposition format."""
    metrics: list[tuple[str, str, str, list[tuple[dict[str, str], float]]]] = []

    def family(name: str, kind: str, help: str) -> list[tuple[dict[str, str], float]]:
        samples: list[tuple[dict[str, str], float]] = []
        metrics.append((name, kind, help, samples))
        return samples

    frames = family("sinkcast_sink_frames_mixed_total", "counter", "Frames mixed per sink.")
    late = family("sinkcast_sink_late_periods_total", "counter", "Mixer periods that ran late.")
    clipped = family("sinkcast_sink_clipped_samples_total", "counter", "Samples clipped to [-1, 1].")
    encoded = family("sinkcast_sink_opus_frames_total", "counter", "Opus frames encoded per sink.")
    peak = family("sinkcast_sink_peak", "gauge", "Peak level of the last mixed period (0-1).")
    listeners = family("sinkcast_sink_listeners", "gauge", "Open WebRTC sessions per sink.")
    packets = family("sinkcast_listener_packets_sent_total", "counter", "RTP packets sent per listener.")
    sent = family("sinkcast_listener_bytes_sent_total", "counter", "RTP bytes sent per listener.")
    underruns = family("sinkcast_source_underruns_total", "counter", "Periods a source had too little audio.")
    overruns = family("sinkcast_source_overruns_total", "counter", "Times a full source queue dropped audio.")
    dropped = family("sinkcast_source_dropped_frames_total", "counter", "48 kHz frames dropped by full source queues.")
    frames_in = family("sinkcast_source_frames_in_total", "counter", "Frames received per source, at its own rate.")
    net_packets = family("sinkcast_input_packets_total", "counter", "Valid packets per network input.")
    net_lost = family("sinkcast_input_lost_packets_total", "counter", "Packets lost per network input.")
    net_late = family("sinkcast_input_late_packets_total", "counter", "Packets too late per network input.")
    net_malformed = family("sinkcast_input_malformed_total", "counter", "Datagrams rejected per network input.")
    net_errors = family("sinkcast_input_errors_total", "counter", "Packets a network input failed to handle.")
    clock_errors = family("sinkcast_sink_clock_errors_total", "counter", "Ticks a sink's clock failed to mix or send.")
    pipe_frames = family("sinkcast_pipe_input_frames_total", "counter", "Frames read per pipe input.")
    pipe_bytes = family("sinkcast_pipe_input_bytes_total", "counter", "Bytes read per pipe input.")
    pipe_writers = family("sinkcast_pipe_input_writers_ended_total", "counter",
                          "Writers of a FIFO pipe input that closed it (the input waits for the next).")
    # Gauges to alert on: a pipe input that has ended or failed feeds nothing any more.
    pipe_eof = family("sinkcast_pipe_input_eof", "gauge", "1 once a pipe input has reached its end of input.")
    pipe_error = family("sinkcast_pipe_input_error", "gauge",
                        "1 once a pipe input's reader has stopped on an error (/api/status says which).")
    for sink_id, s in stats["sinks"].items():
        label = {"sink": sink_id}
        frames.append((label, s["frames_mixed"]))
        late.append((label, s["late_periods"]))
        clock_errors.append((label, s["clock_errors"]))
        clipped.append((label, s["clipped_samples"]))
        encoded.append((label, s["frames_encoded"]))
        peak.append((label, s["peak"]))
        listeners.append((label, len(s["listeners"])))
        for target, l in s["listeners"].items():
            packets.append(({"sink": sink_id, "target": target}, l["packets_sent"]))
            sent.append(({"sink": sink_id, "target": target}, l["bytes_sent"]))
    # Everything per source: the engine's sources, its network inputs, the pipe readers.
    per_source = [
        ("sources", [(underruns, "underruns"), (overruns, "overruns"), (dropped, "dropped_frames"),
                     (frames_in, "frames_in")]),
        ("inputs", [(net_packets, "packets"), (net_lost, "lost"), (net_late, "late"),
                    (net_malformed, "malformed"), (net_errors, "errors")]),
        ("pipe_inputs", [(pipe_frames, "frames"), (pipe_bytes, "bytes")]),
    ]
    for key, fields in per_source:
        for source_id, s in stats.get(key, {}).items():
            for samples, field in fields:
                samples.append(({"source": source_id}, s[field]))
    for source_id, s in stats.get("pipe_inputs", {}).items():
        pipe_writers.append(({"source": source_id}, s.get("writers_ended", 0)))
        pipe_eof.append(({"source": source_id}, int(bool(s["eof"]))))
        pipe_error.append(({"source": source_id}, int(s["error"] is not None)))
    lines: list[str] = []
    for name, kind, help, samples in metrics:
        lines.append(f"# HELP {name} {help}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            rendered = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{rendered}}} {_number(value)}")
    lines.append("# HELP sinkcast_peers Live WebRTC peers in the process.")
    lines.append("# TYPE sinkcast_peers gauge")
    lines.append(f"sinkcast_peers {stats['live_peers']}")
    lines.append("# HELP sinkcast_signaling_backlog Engine messages waiting for the signaling callback.")
    lines.append("# TYPE sinkcast_signaling_backlog gauge")
    lines.append(f"sinkcast_signaling_backlog {stats['signaling_backlog']}")
    return "\n".join(lines) + "\n"


@web.middleware
async def _errors_as_text(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as e:
        for k, v in CORS_HEADERS.items():
            e.headers.setdefault(k, v)
        raise


def make_app(engine: AudioManager, token: str | None = None,
             pipe_inputs: Mapping[str, PipeInput] | None = None) -> web.Application:
    """The aiohttp application serving `engine`. The server object is created on startup,
    inside the running loop; the engine is shut down on cleanup. `pipe_inputs` (from
    `build_engine`) adds their stats to /api/status and /metrics."""
    if token is not None and (problem := bearer_token_problem(token)):
        raise ValueError(f"token: {problem}")
    app = web.Application(middlewares=[_errors_as_text], client_max_size=MAX_SDP_BYTES + 1024)
    app[ENGINE_KEY] = engine

    async def on_startup(app: web.Application) -> None:
        app[SERVER_KEY] = SinkcastServer(engine, token=token, pipe_inputs=pipe_inputs)

    async def on_cleanup(app: web.Application) -> None:
        await asyncio.to_thread(engine.shutdown)

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)

    def route(name: str) -> Any:
        async def call(request: web.Request) -> web.StreamResponse:
            result: web.StreamResponse = await getattr(request.app[SERVER_KEY], name)(request)
            return result

        return call

    app.router.add_get("/", route("index"))
    app.router.add_static("/static/", WEB_DIR, show_index=False)
    app.router.add_get("/api/sinks", route("api_sinks"))
    app.router.add_get("/api/status", route("api_status"))
    app.router.add_get("/metrics", route("metrics"))
    # A page on another origin that sends the token is preflighted first.
    for path in ("/api/sinks", "/api/status", "/metrics"):
        app.router.add_route("OPTIONS", path, route("options"))
    app.router.add_post("/whep/{sink_id}", route("whep_post"))
    app.router.add_route("OPTIONS", "/whep/{sink_id}", route("options"))
    app.router.add_patch("/whep/{sink_id}/{session_id}", route("whep_patch"))
    app.router.add_delete("/whep/{sink_id}/{session_id}", route("whep_delete"))
    app.router.add_route("OPTIONS", "/whep/{sink_id}/{session_id}", route("options"))
    return app


class _ClientErrorsInOneLine(logging.Filter):
    """aiohttp logs a client's malformed request (an over-long request line, bad
    headers) and a connection the client reset as "Error handling request" with
    a traceback, which a client can repeat at will. These are the client's
    mistakes, not the server's: one line each, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, (HttpProcessingError, ConnectionError)):
            detail = str(getattr(error, "message", "") or error).strip().splitlines()
            record.args = (record.getMessage(), type(error).__name__, detail[0][:120] if detail else "")
            record.msg = "%s: %s: %s"
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class AcceptErrorReporter:
    """The event loop's exception handler: says once per `interval` seconds that
    the listening socket cannot accept connections (out of file descriptors).

    asyncio reports each failed accept() with a traceback, and on Linux retries
    many times a second while the descriptors are gone: megabytes of stderr.
    Every other error goes to the loop's default handler, as before."""

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: float | None = None
        self._unreported = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != self.MESSAGE:
            loop.default_exception_handler(context)
            return
        now = loop.time()
        if self._last is not None and now - self._last < self.interval:
            self._unreported += 1
            return
        error = context.get("exception")
        reason = getattr(error, "strerror", None) or error
        more = f" ({self._unreported} more times since the last report)" if self._unreported else ""
        print(f"sinkcast: cannot accept HTTP connections: {reason}{more}; idle connections close after "
              f"{KEEPALIVE_TIMEOUT_S:g} s", file=sys.stderr, flush=True)
        self._last, self._unreported = now, 0


def make_runner(app: web.Application, handle_signals: bool = False) -> web.AppRunner:
    """The runner `serve` uses: idle connections and client errors handled as a
    server on a network needs (short keep-alive, one log line per client error)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _ClientErrorsInOneLine) for f in server_log.filters):
        server_log.addFilter(_ClientErrorsInOneLine())
    # keepalive_timeout also closes a connection that has not sent a whole
    # request head by then (aiohttp starts it when the connection is made).
    # lingering_time: how long the rest of an unread body (after a 408 or 413)
    # is read and dropped before the close; aiohttp's 10 s is a slow client's gift.
    return web.AppRunner(app, handle_signals=handle_signals, shutdown_timeout=5,
                         keepalive_timeout=KEEPALIVE_TIMEOUT_S, lingering_time=2.0)


def raise_file_descriptor_limit() -> tuple[int, int] | None:
    """Raises this process's soft RLIMIT_NOFILE to its hard limit; returns (old, new), or None if unchanged.

    Each listener holds a UDP socket (unless ice_udp_mux) and each HTTP client
    a TCP one; a soft limit of 1024, common on Linux, would cap the server near
    a thousand listeners for no reason the operator chose."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return None
    return soft, target


def describe_inputs(engine: AudioManager) -> list[str]:
    """One line per network input: where it receives. An input without a
    bind_address is on 127.0.0.1 whatever --host says, which a LAN server's
    operator would otherwise find out only from the silence."""
    lines = []
    for source_id, stats in engine.stats().get("inputs", {}).items():
        address, port = stats["bind_address"], stats["port"]
        where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        try:
            loopback = ipaddress.ip_address(address).is_loopback
        except ValueError:
            loopback = False
        note = " (this machine only: set its bind_address to receive from the network)" if loopback else ""
        lines.append(f"input '{source_id}': {stats['protocol']} on UDP {where}{note}")
    return lines


def serve(cfg: ServerConfig) -> int:
    """Runs the server until Ctrl-C (SIGINT) or SIGTERM; returns the exit code.

    Raises OSError when it cannot listen (the port is taken, the host is not
    this machine's), before it has announced anything."""
    from sinkcast.config import build_engine, ice_bind_address

    raised = raise_file_descriptor_limit()
    if raised:
        print(f"sinkcast: file descriptor limit raised from {raised[0]} to {raised[1]} (one per listener)", flush=True)
    pipe_inputs: dict[str, PipeInput] = {}
    engine = build_engine(cfg, pipe_inputs=pipe_inputs)
    app = make_app(engine, token=cfg.token, pipe_inputs=pipe_inputs)
    ice = ice_bind_address(cfg)
    # Said once the port is bound: a server that then fails to listen has served nothing.
    announce = [
        f"serving {len(engine.sinks())} sink(s) ({', '.join(engine.sinks())}) from {cfg.origin}",
        f"media (ICE) on {ice if ice not in ('', '0.0.0.0') else 'every interface'}",
        *describe_inputs(engine),
    ]
    if cfg.token is not None:
        announce.append("WHEP, /api/status and /metrics need the bearer token (the page: open it as /#token=...)")
    try:
        asyncio.run(_run_until_signalled(app, cfg.host, cfg.port, announce))
    except GracefulExit:  # SIGINT or SIGTERM, raised by aiohttp's handler
        pass
    print("sinkcast: stopped", flush=True)
    return 0


async def _run_until_signalled(app: web.Application, host: str, port: int, announce: list[str]) -> None:
    # web.run_app() would announce the address before binding it: port 0 would
    # read ":0", and a port in use would be announced and then fail.
    asyncio.get_running_loop().set_exception_handler(AcceptErrorReporter())
    runner = make_runner(app, handle_signals=True)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        for line in announce:
            print(f"sinkcast: {line}", flush=True)
        urls = sorted({_http_url(address) for address in runner.addresses})
        print(f"sinkcast: open {urls[0]} in a browser (WHEP endpoints: {urls[0]}whep/<sink>); Ctrl-C stops",
              flush=True)
        for url in urls[1:]:
            print(f"sinkcast: also listening at {url}", flush=True)
        if any(address[0] in ("0.0.0.0", "::") for address in runner.addresses):
            print("sinkcast: listening on every interface: from another machine, use this one's name or address",
                  flush=True)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _http_url(address: Any) -> str:
    host, port = address[0], address[1]
    if host in ("0.0.0.0", "::"):
        # Every interface: the URL that works on this machine; others use its name or address.
        return f"http://127.0.0.1:{port}/" if host == "0.0.0.0" else f"http://[::1]:{port}/"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
