"""Records real browser WebRTC offers into tests/data/ (run by hand, not by pytest).

    python3 tests/helpers_subprocess/record_browser_offers.py chromium
    python3 tests/helpers_subprocess/record_browser_offers.py firefox

A local HTTP server on 127.0.0.1 serves a page that builds a few offers
(recvonly audio as a listener sends; audio+video; audio+data channel) with
RTCPeerConnection and POSTs each SDP back. The browser runs headless with a
throw-away profile; nothing leaves loopback. The files are written as
tests/data/offer_<browser>_<variant>.sdp with CRLF line ends, exactly as the
browser produced them.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"

PAGE = """<!doctype html><meta charset="utf-8"><title>offers</title><script>
async function one(variant, build) {
  const pc = new RTCPeerConnection();
  build(pc);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(done => {
    if (pc.iceGatheringState === "complete") return done();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && done());
    setTimeout(done, 3000);
  });
  await fetch("/offer", {method: "POST", body: JSON.stringify(
      {variant, userAgent: navigator.userAgent, sdp: pc.localDescription.sdp})});
  pc.close();
}
(async () => {
  try {
    await one("recvonly_audio", pc => pc.addTransceiver("audio", {direction: "recvonly"}));
    await one("audio_video", pc => { pc.addTransceiver("audio", {direction: "recvonly"});
                                     pc.addTransceiver("video", {direction: "recvonly"}); });
    await one("audio_datachannel", pc => { pc.addTransceiver("audio", {direction: "recvonly"});
                                           pc.createDataChannel("chat"); });
    await fetch("/done", {method: "POST", body: "ok"});
  } catch (e) {
    await fetch("/done", {method: "POST", body: "error: " + e});
  }
})();
</script>"""


def main() -> int:
    browser = sys.argv[1] if len(sys.argv) > 1 else "chromium"
    got: dict[str, dict[str, str]] = {}
    finished = threading.Event()
    status: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers["Content-Length"])).decode()
            if self.path == "/offer":
                value = json.loads(data)
                got[value["variant"]] = value
            else:
                status.append(data)
                finished.set()
            self.send_response(204)
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    profile = tempfile.mkdtemp(prefix=f"offers-{browser}-")
    if browser == "chromium":
        cmd = ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={profile}", url]
    elif browser == "firefox":
        exe = shutil.which("firefox-esr") or shutil.which("firefox") or "firefox-esr"
        cmd = [exe, "--headless", "--no-remote", "--profile", profile, url]
    else:
        raise SystemExit(f"unknown browser {browser!r}")
    env = dict(os.environ, MOZ_HEADLESS="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        if not finished.wait(90):
            print("the browser never reported back", file=sys.stderr)
            return 1
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    if status != ["ok"]:
        print("the page failed:", status, file=sys.stderr)
        return 1
    DATA.mkdir(exist_ok=True)
    for variant, value in sorted(got.items()):
        path = DATA / f"offer_{browser}_{variant}.sdp"
        path.write_bytes(value["sdp"].encode())
        print(f"{path.name}: {len(value['sdp'])} bytes from {value['userAgent']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
