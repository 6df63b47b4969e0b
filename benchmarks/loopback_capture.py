"""When RTP packets to one UDP port leave through the loopback interface, by the kernel's clock.

push->wire latency read at a listener also counts that listener's own receive
work: a probe process serving 100 listeners decrypts and hands over the other
99 packets of the same frame first. A packet socket on `lo` sees each packet
as the interface delivers it to the kernel's IP stack, stamped by the kernel
then: the packet is off the wire, before any process has read it. (Bound to
IPv4 it sees received packets only, so each once; on loopback that moment
follows the sender's sendto() by microseconds.) A classic BPF filter keeps only
UDP to the one port, so the capture thread wakes for that listener's packets.

Needs CAP_NET_RAW (root): LoopbackCapture.open() returns None without it, and
the benchmark then reports the listener's figure only.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import threading

ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35


def udp_to_port_filter(port: int) -> bytes:
    """Classic BPF over an IPv4 packet (a SOCK_DGRAM packet socket starts at the IP header):
    accept unfragmented UDP whose destination port is `port`."""
    ld_b_abs, ld_h_abs, ldx_msh, ld_h_ind = 0x30, 0x28, 0xB1, 0x48
    jeq, jset, ret = 0x15, 0x45, 0x06
    program = [
        (ld_b_abs, 0, 0, 9),  # 0: the IP protocol
        (jeq, 0, 6, socket.IPPROTO_UDP),  # 1: UDP -> 2, else drop (8)
        (ld_h_abs, 0, 0, 6),  # 2: flags and fragment offset
        (jset, 4, 0, 0x1FFF),  # 3: a later fragment -> drop (8)
        (ldx_msh, 0, 0, 0),  # 4: x = the IP header's length
        (ld_h_ind, 0, 0, 2),  # 5: the UDP destination port
        (jeq, 0, 1, port),  # 6: ours -> accept (7), else drop (8)
        (ret, 0, 0, 0xFFFF),  # 7: accept
        (ret, 0, 0, 0),  # 8: drop
    ]
    return b"".join(struct.pack("HBBI", *op) for op in program)


class LoopbackCapture:
    """Collects (kernel time in ns on CLOCK_REALTIME, UDP payload) of RTP packets sent to `port` on lo."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._packets: list[tuple[int, bytes]] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="loopback capture", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, port: int) -> LoopbackCapture | None:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        except PermissionError:
            return None
        program = udp_to_port_filter(port)
        buffer = ctypes.create_string_buffer(program, len(program))  # the kernel copies it
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                        struct.pack("HL", len(program) // 8, ctypes.addressof(buffer)))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind(("lo", ETH_P_IP))
        # What arrived before the filter was attached is anyone's packet: drop it.
        sock.setblocking(False)
        try:
            while True:
                sock.recv(65536)
        except BlockingIOError:
            pass
        sock.settimeout(0.1)
        return cls(sock)

    def _run(self) -> None:
        while not self._stopping:
            try:
                data, ancillary, _, _ = self._sock.recvmsg(65536, 64)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            stamp = next((struct.unpack("qq", payload[:16]) for level, kind, payload in ancillary
                          if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS), None)
            if stamp is None:
                continue
            header = (data[0] & 0x0F) * 4
            with self._lock:
                self._packets.append((stamp[0] * 1_000_000_000 + stamp[1], data[header + 8:]))

    def take(self) -> list[tuple[int, bytes]]:
        with self._lock:
            packets, self._packets = self._packets, []
        return packets

    def close(self) -> None:
        self._stopping = True
        self._thread.join(1.0)
        self._sock.close()


def rtp_sizes(packets: list[tuple[int, bytes]]) -> list[tuple[int, int]]:
    """(time, size) of the RTP packets among SRTP and SRTCP ones: RTCP's payload types are 200-204,
    which read as 72-76 where RTP keeps its marker bit. SRTP leaves the RTP header in the clear."""
    return [(t, len(p)) for t, p in packets if len(p) >= 12 and p[0] >> 6 == 2 and not 72 <= (p[1] & 0x7F) <= 76]
