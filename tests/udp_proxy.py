"""A small UDP proxy for tests: forwards datagrams from a loopback port to a
target, dropping, reordering and duplicating them on a fixed, deterministic
schedule (by packet index), so a test knows what the receiver should see."""

from __future__ import annotations

import socket
import threading


class UdpProxy:
    """Listens on 127.0.0.1:<port> (ephemeral) and forwards to target_port.

    drop_every=N drops packets N-1, 2N-1, ...; reorder_every=N holds packet
    N-1, 2N-1, ... back and sends it after the next one (a swap of neighbours);
    duplicate_every=N sends packets N-1, 2N-1, ... twice. The first `warmup`
    packets pass untouched. 0 disables a rule. The counters say what was done
    (a held packet that nothing followed within 50 ms went out in order).
    """

    def __init__(self, target_port: int, *, drop_every: int = 0, reorder_every: int = 0,
                 duplicate_every: int = 0, warmup: int = 10) -> None:
        self.target = ("127.0.0.1", target_port)
        self.drop_every = drop_every
        self.reorder_every = reorder_every
        self.duplicate_every = duplicate_every
        self.warmup = warmup
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.port = self.sock.getsockname()[1]
        self.received = self.forwarded = self.dropped = self.reordered = self.duplicated = 0
        self.dropped_sizes: list[int] = []  # lengths of the dropped datagrams
        self._held: bytes | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="udp-proxy", daemon=True)
        self._thread.start()

    def _hit(self, every: int, index: int) -> bool:
        return every > 0 and index >= self.warmup and (index - self.warmup) % every == every - 1

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                if self._held is not None:  # nothing followed: let the held packet go, in order after all
                    self.out.sendto(self._held, self.target)
                    self.forwarded += 1
                    self.reordered -= 1
                    self._held = None
                continue
            except OSError:
                break
            index = self.received
            self.received += 1
            if self._hit(self.drop_every, index):
                self.dropped += 1
                self.dropped_sizes.append(len(data))
                continue
            if self._held is None and self._hit(self.reorder_every, index):
                self._held = data
                self.reordered += 1
                continue
            self.out.sendto(data, self.target)
            self.forwarded += 1
            if self._hit(self.duplicate_every, index):
                self.out.sendto(data, self.target)
                self.duplicated += 1
            if self._held is not None:
                self.out.sendto(self._held, self.target)
                self.forwarded += 1
                self._held = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()
        self.out.close()

    def __enter__(self) -> "UdpProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
