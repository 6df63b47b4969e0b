// sinkcast browser client: lists the server's sinks and plays each one over
// WebRTC, subscribing with WHEP (draft-ietf-wish-whep). Plain ES2020, no dependencies.
//
// Test hook: window.sinkcast = {players, sinks, play, stop, stats,
// dominantFrequency, level}. players[id] is {pc, analyser, audioContext,
// state, ...}; stats(id) is the latest getStats summary of that sink.
'use strict';

(function () {
  const SINKS_URL = '/api/sinks';
  const LIST_INTERVAL_MS = 3000;     // refresh of the sink list while the server answers
  const BACKOFF_MIN_MS = 1000;       // reconnect backoff: 1 s, 2 s, 4 s, 5 s, 5 s ...
  const BACKOFF_MAX_MS = 5000;
  const ICE_GATHER_TIMEOUT_MS = 1000;
  const CONNECT_TIMEOUT_MS = 10000;  // an offer that does not connect by then is retried
  const STALL_MS = 4000;             // connected but no new packets for this long: resubscribe
  const FFT_SIZE = 8192;

  const sinks = new Map();           // id -> latest entry of /api/sinks
  const players = {};                // id -> Player
  const wanted = new Set();          // sinks the user asked to play
  let audioContext = null;
  let token = readToken();

  const server = {
    state: 'connecting',             // 'connecting' | 'up' | 'down'
    failures: 0,
    timer: null,
    nextAt: 0,
  };

  // ---------------------------------------------------------------- helpers

  function readToken() {
    // The raw text after "token=", percent-decoded: URLSearchParams would read
    // the "+" of a base64 token as a space.
    const hash = window.location.hash.replace(/^#/, '');
    for (const part of hash.split('&')) {
      if (!part.startsWith('token=')) continue;
      const raw = part.slice('token='.length);
      try {
        return decodeURIComponent(raw) || null;
      } catch (err) {  // a stray "%": take the text as it is
        return raw || null;
      }
    }
    return null;
  }

  window.addEventListener('hashchange', () => { token = readToken(); });

  function authHeaders(extra) {
    const h = Object.assign({}, extra || {});
    if (token) h['Authorization'] = 'Bearer ' + token;
    return h;
  }

  function backoff(failures) {
    return Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, Math.max(0, failures - 1)));
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function fmt(value, digits, unit) {
    if (value === null || value === undefined || !Number.isFinite(value)) return '\u2013';
    return value.toFixed(digits) + (unit ? ' ' + unit : '');
  }

  function ensureAudioContext() {
    if (!audioContext) {
      const Ctor = window.AudioContext || window.webkitAudioContext;
      audioContext = new Ctor({ latencyHint: 'interactive' });
    }
    if (audioContext.state === 'suspended') {
      audioContext.resume().catch(() => {});
    }
    return audioContext;
  }

  // ------------------------------------------------------------------ sinks

  async function refreshSinks() {
    clearTimeout(server.timer);
    let list;
    let instance = null;
    try {
      const res = await fetch(SINKS_URL, { headers: authHeaders({ Accept: 'application/json' }), cache: 'no-store' });
      if (!res.ok) throw new Error('GET ' + SINKS_URL + ': HTTP ' + res.status);
      list = await res.json();
      if (!Array.isArray(list)) throw new Error('GET ' + SINKS_URL + ': not a list');
      instance = res.headers.get('Sinkcast-Instance');
    } catch (err) {
      server.failures += 1;
      const delay = backoff(server.failures);
      setServerState('down', 'server unreachable (' + err.message + '); retrying in ' + (delay / 1000).toFixed(0) + ' s');
      server.nextAt = Date.now() + delay;
      server.timer = setTimeout(refreshSinks, delay);
      return;
    }
    const recovered = server.state === 'down';
    server.failures = 0;
    setServerState('up', 'connected \u00b7 ' + list.length + ' sink' + (list.length === 1 ? '' : 's'));
    applySinkList(list);
    // A session made by an earlier server process is gone with it: subscribe
    // again right away rather than wait for the connection to time out. A
    // player waiting out its backoff while the server was away tries again
    // now it is back. A failed poll alone (a proxy's 502, a network hiccup)
    // says nothing about the streams: a playing player keeps playing.
    for (const id of wanted) {
      const p = players[id];
      if (!p) continue;
      const orphaned = p.session && p.instance && instance !== null && p.instance !== instance;
      const waiting = recovered && !p.session && p.state === 'reconnecting';
      if (orphaned) restart(p, 'the server restarted', 0);
      else if (waiting) restart(p, 'the server is back', 0);
    }
    server.timer = setTimeout(refreshSinks, LIST_INTERVAL_MS);
  }

  function setServerState(state, text) {
    server.state = state;
    const el = document.getElementById('server-status');
    el.dataset.state = state;
    document.getElementById('server-status-text').textContent = text;
  }

  function applySinkList(list) {
    const seen = new Set();
    for (const entry of list) {
      if (!entry || typeof entry.id !== 'string') continue;
      seen.add(entry.id);
      sinks.set(entry.id, entry);
      const card = cardFor(entry.id) || createCard(entry.id);
      card.classList.remove('gone');
      setField(card, 'channels', entry.channels === 1 ? 'mono' : entry.channels === 2 ? 'stereo' : entry.channels + ' ch');
      setField(card, 'frame', (entry.frame_ms != null ? entry.frame_ms : '?') + ' ms frames');
      const n = entry.listeners != null ? entry.listeners : 0;
      setField(card, 'listeners', n + ' listener' + (n === 1 ? '' : 's'));
    }
    for (const id of Array.from(sinks.keys())) {
      if (seen.has(id)) continue;
      sinks.delete(id);
      const card = cardFor(id);
      if (!card) continue;
      if (wanted.has(id)) {
        card.classList.add('gone');
        setField(card, 'listeners', 'not on the server any more');
      } else {
        card.remove();
        delete players[id];
      }
    }
    document.getElementById('empty').hidden = list.length > 0 || wanted.size > 0;
  }

  function whepUrl(id) {
    const entry = sinks.get(id);
    const path = entry && entry.whep ? entry.whep : '/whep/' + encodeURIComponent(id);
    return new URL(path, window.location.href).toString();
  }

  // ------------------------------------------------------------------- cards

  function cardFor(id) {
    return document.querySelector('article.sink[data-sink="' + CSS.escape(id) + '"]');
  }

  function createCard(id) {
    const tpl = document.getElementById('sink-template');
    const card = tpl.content.firstElementChild.cloneNode(true);
    card.dataset.sink = id;
    card.id = 'sink-' + id;
    card.querySelector('.sink-name').textContent = id;
    for (const el of card.querySelectorAll('[data-action]')) el.dataset.sink = id;
    card.querySelector('button.play').id = 'play-' + id;
    card.querySelector('button.stop').id = 'stop-' + id;
    card.querySelector('button.play').addEventListener('click', () => { play(id); });
    card.querySelector('button.stop').addEventListener('click', () => { stop(id); });
    card.querySelector('input[data-action="volume"]').addEventListener('input', (ev) => {
      const p = players[id];
      if (p && p.audio) p.audio.volume = Number(ev.target.value);
    });
    // Keep the cards in the server's order of first appearance.
    document.getElementById('sinks').appendChild(card);
    return card;
  }

  function setField(card, name, text) {
    const el = card.querySelector('[data-field="' + name + '"]');
    if (el && el.textContent !== text) el.textContent = text;
  }

  function renderPlayer(p) {
    const card = cardFor(p.id);
    if (!card) return;
    card.dataset.state = p.state;
    setField(card, 'state', p.state);
    const playing = wanted.has(p.id);
    card.querySelector('button.play').disabled = playing;
    card.querySelector('button.stop').disabled = !playing;
    const err = card.querySelector('[data-field="error"]');
    if (p.error && p.state !== 'playing') {
      err.textContent = p.error;
      err.hidden = false;
    } else {
      err.hidden = true;
    }
  }

  function renderStats(p) {
    const card = cardFor(p.id);
    if (!card) return;
    const s = p.stats || {};
    setField(card, 'latency', fmt(s.latencyMs, 0, 'ms'));
    setField(card, 'jitter', fmt(s.jitterMs, 1, 'ms'));
    setField(card, 'rtt', fmt(s.rttMs, 1, 'ms'));
    setField(card, 'packets', s.packetsReceived != null ? String(s.packetsReceived) : '\u2013');
    setField(card, 'lost', s.packetsLost != null ? String(s.packetsLost) : '\u2013');
    setField(card, 'bitrate', fmt(s.bitrateKbps, 0, 'kb/s'));
    const f = p.analyser ? dominantFrequency(p.id) : null;
    setField(card, 'freq', fmt(f, 1, 'Hz'));
  }

  // ----------------------------------------------------------------- players

  function newPlayer(id) {
    return {
      id,
      state: 'idle',
      pc: null,
      session: null,          // absolute URL of the WHEP session (the Location header)
      instance: null,         // the Sinkcast-Instance of the server that made the session
      audio: null,            // <audio> element that plays the track
      audioContext: null,
      source: null,           // MediaStreamAudioSourceNode
      analyser: null,
      sink: null,             // silent gain node that keeps the graph pulled
      stream: null,
      stats: null,
      error: null,
      generation: 0,          // bumps on every (re)subscription; stale callbacks check it
      failures: 0,
      retryTimer: null,
      connectTimer: null,
      lastPackets: 0,
      lastPacketsAt: 0,
      connects: 0,            // successful connections so far
      meter: { peakDb: -Infinity, peakHoldUntil: 0, rmsDb: -Infinity },
      prev: null,             // previous raw stats sample, for per-second deltas
    };
  }

  function setState(p, state, error) {
    p.state = state;
    if (error !== undefined) p.error = error;
    renderPlayer(p);
  }

  function play(id) {
    ensureAudioContext();
    wanted.add(id);
    let p = players[id];
    if (!p) p = players[id] = newPlayer(id);
    if (p.pc && (p.state === 'connecting' || p.state === 'playing')) {
      renderPlayer(p);
      return p;
    }
    p.failures = 0;
    subscribe(p);
    return p;
  }

  function stop(id) {
    wanted.delete(id);
    const p = players[id];
    if (!p) return;
    p.generation += 1;
    clearTimeout(p.retryTimer);
    clearTimeout(p.connectTimer);
    teardown(p, true);
    p.stats = null;
    p.error = null;
    setState(p, 'stopped');
    renderStats(p);
  }

  function teardown(p, sayGoodbye) {
    const pc = p.pc;
    const session = p.session;
    p.pc = null;
    p.session = null;
    const close = () => {
      if (!pc) return;
      try { pc.close(); } catch (e) { /* already closed */ }
    };
    if (pc) {
      pc.ontrack = null;
      pc.onconnectionstatechange = null;
      pc.oniceconnectionstatechange = null;
    }
    if (sayGoodbye && session) {
      // End the session first and close the peer connection after: closing
      // first lets the server drop the session on its own, and the DELETE
      // would then race it. Never wait more than a second for the server.
      const timer = setTimeout(close, 1000);
      fetch(session, { method: 'DELETE', headers: authHeaders(), keepalive: true })
        .catch(() => {})
        .finally(() => { clearTimeout(timer); close(); });
    } else {
      close();
    }
    if (p.source) { try { p.source.disconnect(); } catch (e) { /* ignore */ } }
    p.source = null;
    if (p.audio) {
      p.audio.srcObject = null;
      p.audio.remove();
      p.audio = null;
    }
    p.stream = null;
    p.prev = null;
  }

  function restart(p, reason, delayMs) {
    if (!wanted.has(p.id)) return;
    const gen = ++p.generation;
    clearTimeout(p.retryTimer);
    clearTimeout(p.connectTimer);
    teardown(p, true);
    p.failures += 1;
    const delay = delayMs != null ? delayMs : backoff(p.failures);
    setState(p, 'reconnecting', reason + (delay ? '; retrying in ' + (delay / 1000).toFixed(0) + ' s' : ''));
    p.retryTimer = setTimeout(() => {
      if (gen === p.generation && wanted.has(p.id)) subscribe(p);
    }, delay);
  }

  async function subscribe(p) {
    const gen = ++p.generation;
    clearTimeout(p.retryTimer);
    clearTimeout(p.connectTimer);
    teardown(p, true);
    setState(p, 'connecting', null);

    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    p.pc = pc;
    p.lastPackets = 0;
    p.lastPacketsAt = Date.now();
    pc.addTransceiver('audio', { direction: 'recvonly' });

    pc.ontrack = (ev) => {
      if (gen !== p.generation) return;
      const stream = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
      attachStream(p, stream);
    };
    pc.onconnectionstatechange = () => {
      if (gen !== p.generation) return;
      const st = pc.connectionState;
      if (st === 'connected') {
        clearTimeout(p.connectTimer);
        p.connects += 1;
        p.lastPacketsAt = Date.now();
        setState(p, 'playing', null);
      } else if (st === 'failed' || st === 'closed') {
        restart(p, 'connection ' + st);
      } else if (st === 'disconnected') {
        // Often transient; give ICE a moment before starting over.
        setState(p, 'reconnecting', 'connection disconnected');
        clearTimeout(p.retryTimer);
        p.retryTimer = setTimeout(() => {
          if (gen === p.generation && pc.connectionState !== 'connected') restart(p, 'connection lost');
        }, backoff(Math.max(1, p.failures)));
      }
    };

    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription({ type: 'offer', sdp: withStereoOpus(offer.sdp) });
      await waitForIceGathering(pc, ICE_GATHER_TIMEOUT_MS);
      if (gen !== p.generation) return;
      const url = whepUrl(p.id);
      const res = await fetch(url, {
        method: 'POST',
        headers: authHeaders({ 'Content-Type': 'application/sdp', Accept: 'application/sdp' }),
        body: pc.localDescription.sdp,
        cache: 'no-store',
      });
      if (gen !== p.generation) {
        // Stopped while the offer was in flight: drop the new session.
        const loc = res.headers.get('Location');
        if (res.status === 201 && loc) {
          fetch(new URL(loc, url).toString(), { method: 'DELETE', headers: authHeaders() }).catch(() => {});
        }
        return;
      }
      if (res.status !== 201 && res.status !== 200) {
        const text = (await res.text().catch(() => '')).trim();
        throw new Error('WHEP ' + res.status + (text ? ': ' + text.slice(0, 200) : ''));
      }
      const loc = res.headers.get('Location');
      p.session = loc ? new URL(loc, url).toString() : null;
      p.instance = res.headers.get('Sinkcast-Instance');
      const answer = await res.text();
      if (gen !== p.generation) return;
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      p.connectTimer = setTimeout(() => {
        if (gen === p.generation && pc.connectionState !== 'connected') restart(p, 'no connection after ' + CONNECT_TIMEOUT_MS / 1000 + ' s');
      }, CONNECT_TIMEOUT_MS);
    } catch (err) {
      if (gen !== p.generation) return;
      restart(p, err && err.message ? err.message : String(err));
    }
  }

  // Chromium sets up its Opus decoder from the stereo= parameter of its own
  // description, not the answer's: without stereo=1 in the offer it decodes
  // every stream to mono, a stereo sink included. So ask for stereo on each
  // Opus payload type; a mono stream then plays the same on both sides.
  function withStereoOpus(sdp) {
    const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
    const lines = sdp.split(eol);
    const opus = new Set();      // Opus payload types
    const withFmtp = new Set();  // payload types that have an a=fmtp line
    for (const line of lines) {
      const rtpmap = /^a=rtpmap:(\d+) opus\/48000\/2$/i.exec(line);
      if (rtpmap) opus.add(rtpmap[1]);
      const fmtp = /^a=fmtp:(\d+)(?: |$)/.exec(line);
      if (fmtp) withFmtp.add(fmtp[1]);
    }
    const out = [];
    for (const line of lines) {
      const fmtp = /^a=fmtp:(\d+)(?: (.*))?$/.exec(line);
      if (fmtp && opus.has(fmtp[1])) {
        const params = (fmtp[2] || '').split(';').map((s) => s.trim()).filter((s) => s && !/^stereo=/i.test(s));
        out.push('a=fmtp:' + fmtp[1] + ' ' + params.concat('stereo=1').join(';'));
        continue;
      }
      out.push(line);
      const rtpmap = /^a=rtpmap:(\d+) /.exec(line);
      if (rtpmap && opus.has(rtpmap[1]) && !withFmtp.has(rtpmap[1])) out.push('a=fmtp:' + rtpmap[1] + ' stereo=1');
    }
    return out.join(eol);
  }

  function waitForIceGathering(pc, timeoutMs) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        pc.removeEventListener('icegatheringstatechange', check);
        resolve();
      };
      const check = () => { if (pc.iceGatheringState === 'complete') done(); };
      const timer = setTimeout(done, timeoutMs);
      pc.addEventListener('icegatheringstatechange', check);
    });
  }

  function attachStream(p, stream) {
    if (p.stream === stream) return;
    p.stream = stream;
    // The <audio> element plays the track (and in Chrome it is also what
    // makes remote WebRTC audio flow into WebAudio).
    if (!p.audio) {
      p.audio = document.createElement('audio');
      p.audio.autoplay = true;
      p.audio.dataset.sink = p.id;
      p.audio.hidden = true;
      const vol = document.querySelector('input[data-action="volume"][data-sink="' + CSS.escape(p.id) + '"]');
      if (vol) p.audio.volume = Number(vol.value);
      document.body.appendChild(p.audio);
    }
    p.audio.srcObject = stream;
    p.audio.play().catch((err) => {
      p.error = 'audio element: ' + err.message + ' (click play again)';
      renderPlayer(p);
    });

    const ctx = ensureAudioContext();
    p.audioContext = ctx;
    if (!p.analyser) {
      p.analyser = ctx.createAnalyser();
      p.analyser.fftSize = FFT_SIZE;
      p.analyser.smoothingTimeConstant = 0.5;
      p.analyser.minDecibels = -140;
      p.analyser.maxDecibels = 0;
      // A muted branch to the destination keeps the analyser pulled in
      // every browser; the audible output is the <audio> element.
      p.sink = ctx.createGain();
      p.sink.gain.value = 0;
      p.analyser.connect(p.sink);
      p.sink.connect(ctx.destination);
    }
    if (p.source) { try { p.source.disconnect(); } catch (e) { /* ignore */ } }
    p.source = ctx.createMediaStreamSource(stream);
    p.source.connect(p.analyser);
  }

  // ------------------------------------------------------------------- stats

  async function pollStats() {
    for (const id of Object.keys(players)) {
      const p = players[id];
      if (!p.pc || !wanted.has(id)) continue;
      const gen = p.generation;
      let report;
      try {
        report = await p.pc.getStats();
      } catch (e) {
        continue;
      }
      if (gen !== p.generation) continue;
      p.stats = summarize(p, report);
      const now = Date.now();
      const packets = p.stats.packetsReceived || 0;
      if (packets > p.lastPackets) {
        p.lastPackets = packets;
        p.lastPacketsAt = now;
        if (p.state === 'playing' && packets > 25) p.failures = 0;
      } else if (p.state === 'playing' && now - p.lastPacketsAt > STALL_MS) {
        restart(p, 'no audio for ' + (STALL_MS / 1000) + ' s');
      }
      renderStats(p);
    }
  }

  function summarize(p, report) {
    let inbound = null;
    let pair = null;
    let codec = null;
    const byId = new Map();
    report.forEach((s) => {
      byId.set(s.id, s);
      if (s.type === 'inbound-rtp' && (s.kind === 'audio' || s.mediaType === 'audio')) inbound = s;
    });
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) || pair;
    });
    if (!pair) {
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && s.state === 'succeeded' && (s.nominated || s.selected)) pair = s;
      });
    }
    if (inbound && inbound.codecId) codec = byId.get(inbound.codecId) || null;

    const out = {
      timestamp: Date.now(),
      state: p.state,
      connectionState: p.pc ? p.pc.connectionState : 'closed',
      iceConnectionState: p.pc ? p.pc.iceConnectionState : 'closed',
      session: p.session,
      connects: p.connects,
      packetsReceived: 0,
      packetsLost: 0,
      bytesReceived: 0,
      jitter: null,
      jitterMs: null,
      latencyMs: null,
      jitterBufferMs: null,
      rttMs: null,
      bitrateKbps: null,
      audioLevel: null,
      totalSamplesReceived: null,
      concealedSamples: null,
      codec: codec ? codec.mimeType : null,
      localCandidate: null,
      remoteCandidate: null,
    };
    if (inbound) {
      out.packetsReceived = inbound.packetsReceived || 0;
      out.packetsLost = inbound.packetsLost || 0;
      out.bytesReceived = inbound.bytesReceived || 0;
      out.jitter = inbound.jitter != null ? inbound.jitter : null;
      out.jitterMs = out.jitter != null ? out.jitter * 1000 : null;
      out.audioLevel = inbound.audioLevel != null ? inbound.audioLevel : null;
      out.totalSamplesReceived = inbound.totalSamplesReceived != null ? inbound.totalSamplesReceived : null;
      out.concealedSamples = inbound.concealedSamples != null ? inbound.concealedSamples : null;
      const delay = inbound.jitterBufferDelay;
      const emitted = inbound.jitterBufferEmittedCount;
      if (delay != null && emitted) {
        out.jitterBufferMs = (delay / emitted) * 1000;       // average since the start
        const prev = p.prev;
        if (prev && emitted > prev.emitted) {
          out.latencyMs = ((delay - prev.delay) / (emitted - prev.emitted)) * 1000;  // over the last second
        } else {
          out.latencyMs = out.jitterBufferMs;
        }
      }
      const prev = p.prev;
      if (prev && inbound.timestamp > prev.timestamp) {
        out.bitrateKbps = ((out.bytesReceived - prev.bytes) * 8) / (inbound.timestamp - prev.timestamp);
      }
      p.prev = { delay: delay || 0, emitted: emitted || 0, bytes: out.bytesReceived, timestamp: inbound.timestamp };
    }
    if (pair) {
      if (pair.currentRoundTripTime != null) out.rttMs = pair.currentRoundTripTime * 1000;
      const lc = byId.get(pair.localCandidateId);
      const rc = byId.get(pair.remoteCandidateId);
      if (lc) out.localCandidate = (lc.address || lc.ip || '?') + ':' + lc.port + ' ' + lc.candidateType;
      if (rc) out.remoteCandidate = (rc.address || rc.ip || '?') + ':' + rc.port + ' ' + rc.candidateType;
    }
    return out;
  }

  // ------------------------------------------------------------------- meter

  function level(id) {
    const p = players[id];
    if (!p || !p.analyser) return null;
    const buf = new Float32Array(p.analyser.fftSize);
    p.analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    let peak = 0;
    for (let i = 0; i < buf.length; i++) {
      const v = buf[i];
      sum += v * v;
      const a = v < 0 ? -v : v;
      if (a > peak) peak = a;
    }
    const rms = Math.sqrt(sum / buf.length);
    return { rms, peak, rmsDb: 20 * Math.log10(Math.max(rms, 1e-9)), peakDb: 20 * Math.log10(Math.max(peak, 1e-9)) };
  }

  const METER_FLOOR_DB = -60;

  function drawMeters() {
    const now = performance.now();
    for (const card of document.querySelectorAll('article.sink[data-sink]')) {
      const id = card.dataset.sink;
      const p = players[id] || null;
      const canvas = card.querySelector('canvas.meter');
      // Draw at the canvas's real pixel size, so the scale's 1 px ticks stay sharp.
      const dpr = window.devicePixelRatio || 1;
      const cw = Math.round(canvas.clientWidth * dpr);
      const ch = Math.round(canvas.clientHeight * dpr);
      if (cw > 0 && ch > 0 && (canvas.width !== cw || canvas.height !== ch)) {
        canvas.width = cw;
        canvas.height = ch;
      }
      const g = canvas.getContext('2d');
      const w = canvas.width;
      const h = canvas.height;
      g.fillStyle = '#0b0f16';
      g.fillRect(0, 0, w, h);
      const lv = p && p.analyser && wanted.has(id) ? level(id) : null;
      const m = p ? p.meter : { rmsDb: -Infinity, peakDb: -Infinity, peakHoldUntil: 0 };
      if (lv) {
        m.rmsDb = lv.rmsDb;
        if (lv.peakDb >= m.peakDb || now > m.peakHoldUntil) {
          m.peakDb = lv.peakDb;
          m.peakHoldUntil = now + 1000;
        }
      } else {
        m.rmsDb = -Infinity;
        m.peakDb = -Infinity;
      }
      const x = (db) => Math.max(0, Math.min(1, (db - METER_FLOOR_DB) / -METER_FLOOR_DB)) * w;
      if (Number.isFinite(m.rmsDb)) {
        const grad = g.createLinearGradient(0, 0, w, 0);
        grad.addColorStop(0, '#2fbf71');
        grad.addColorStop(0.75, '#e3c84a');
        grad.addColorStop(1, '#e2523f');
        g.fillStyle = grad;
        g.fillRect(0, 4, x(m.rmsDb), h - 8);
      }
      if (Number.isFinite(m.peakDb) && m.peakDb > METER_FLOOR_DB) {
        g.fillStyle = '#f4f6fa';
        g.fillRect(Math.min(w - 3, x(m.peakDb)), 2, 3, h - 4);
      }
      g.fillStyle = 'rgba(255,255,255,0.16)';
      for (let db = METER_FLOOR_DB + 10; db < 0; db += 10) g.fillRect(Math.round(x(db)), 0, Math.max(1, Math.round(dpr)), h);
      setField(card, 'level', lv && Number.isFinite(m.rmsDb) ? m.rmsDb.toFixed(1) + ' dBFS' : '\u2013 dBFS');
    }
  }

  function meterLoop() {
    drawMeters();
    window.requestAnimationFrame(meterLoop);
  }

  // -------------------------------------------------------------- analysis

  // The strongest spectral peak between minHz and maxHz, refined by fitting
  // a parabola through the peak bin and its neighbours (in dB). Returns null
  // when nothing is playing or the spectrum is silent.
  function dominantFrequency(id, minHz, maxHz) {
    const p = players[id];
    if (!p || !p.analyser) return null;
    const a = p.analyser;
    const n = a.frequencyBinCount;
    const spectrum = new Float32Array(n);
    a.getFloatFrequencyData(spectrum);
    const binHz = a.context.sampleRate / a.fftSize;
    const lo = Math.max(1, Math.floor((minHz || 20) / binHz));
    const hi = Math.min(n - 2, Math.ceil((maxHz || 20000) / binHz));
    let k = -1;
    let best = -Infinity;
    for (let i = lo; i <= hi; i++) {
      if (spectrum[i] > best) {
        best = spectrum[i];
        k = i;
      }
    }
    if (k < 0 || !Number.isFinite(best) || best < a.minDecibels + 10) return null;
    const l = spectrum[k - 1];
    const r = spectrum[k + 1];
    let delta = 0;
    if (Number.isFinite(l) && Number.isFinite(r)) {
      const denom = l - 2 * best + r;
      if (denom < 0) delta = Math.max(-0.5, Math.min(0.5, (0.5 * (l - r)) / denom));
    }
    return (k + delta) * binHz;
  }

  // ----------------------------------------------------------------- wiring

  document.getElementById('play-all').addEventListener('click', () => {
    for (const id of sinks.keys()) play(id);
  });
  document.getElementById('stop-all').addEventListener('click', () => {
    for (const id of Array.from(wanted)) stop(id);
  });
  // Any click counts as a user gesture: let it unlock audio.
  document.addEventListener('click', () => {
    if (audioContext && audioContext.state === 'suspended') audioContext.resume().catch(() => {});
    for (const id of wanted) {
      const p = players[id];
      if (p && p.audio && p.audio.paused) p.audio.play().catch(() => {});
    }
  }, true);
  window.addEventListener('pagehide', () => {
    for (const id of Object.keys(players)) {
      const p = players[id];
      if (p.session) fetch(p.session, { method: 'DELETE', headers: authHeaders(), keepalive: true }).catch(() => {});
    }
  });

  window.sinkcast = {
    players,
    sinks: () => Array.from(sinks.values()),
    wanted: () => Array.from(wanted),
    server: () => ({ state: server.state, failures: server.failures }),
    play,
    stop,
    level,
    dominantFrequency,
    stats: (id) => (players[id] && players[id].stats) || null,
    refresh: refreshSinks,
  };

  refreshSinks();
  setInterval(pollStats, 1000);
  window.requestAnimationFrame(meterLoop);
})();
