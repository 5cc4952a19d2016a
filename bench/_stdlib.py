"""Baselines written with the blocking stdlib ``socket`` module, nothing else.

Run as a helper, ``python -m bench._stdlib echo|ack``, this is the peer: a
blocking ``recvfrom``/``sendto`` loop on ``127.0.0.1`` port 0 that either echoes
each datagram (``echo``) or answers it with a cumulative acknowledgement
(``ack``). The client halves, :func:`echo_client` and :func:`window_client`, run
in the benchmark's process. They are the yardsticks: the fastest simple Python
program doing the same job on the same machine, in the same run.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import struct
import time
from typing import Final

from ._harness import Sample
from ._probe import OvertimeError, cpu_list, pin, time_limit

#: Tells the peer to report and exit. Shorter than any data datagram.
STOP: Final = b"STOP"
#: The window baseline's header: a sequence number; its ack: the next one expected.
SEQ: Final = struct.Struct("!I")

_RECV_SIZE = 65536


def payload(size: int) -> bytes:
    """``size`` bytes of filler (ASCII, like the chat messages)."""
    return (b"0123456789" * (size // 10 + 1))[:size]


def echo_client(port: int, messages: int, size: int, timeout: float) -> Sample:
    """Stop-and-wait: send ``size`` bytes, block for the echo; ``messages`` times."""
    data = payload(size)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, time_limit(timeout):
        sock.connect(("127.0.0.1", port))
        sock.send(data)  # one untimed round trip: the peer is up and listening
        sock.recv(_RECV_SIZE)
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(messages):
            sock.send(data)
            if len(sock.recv(_RECV_SIZE)) != size:
                raise RuntimeError("the echo came back with a different size")
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Sample(
        {"msgs_per_s": messages / wall, "wall_s": wall, "client_cpu_us": cpu / messages * 1e6}
    )


def window_client(
    port: int, messages: int, size: int, window: int, rto: float, timeout: float
) -> Sample:
    """A one-way blast with cumulative acks: at most ``window`` datagrams unacknowledged.

    Go-back-N: when no ack comes within ``rto`` seconds, everything in flight is
    sent again (counted as retransmissions). Each datagram is a sequence number
    and ``size`` bytes of payload.
    """
    body = payload(size)
    base = next_seq = retransmissions = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, time_limit(timeout):
        sock.connect(("127.0.0.1", port))
        sock.settimeout(rto)  # the retransmission timer
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(8 * messages + 1000):  # bounded: acks plus a generous number of timeouts
            if base >= messages:
                break
            while next_seq < messages and next_seq - base < window:
                sock.send(SEQ.pack(next_seq) + body)
                next_seq += 1
            try:
                ack = sock.recv(_RECV_SIZE)
            except TimeoutError:
                retransmissions += next_seq - base
                next_seq = base
                continue
            base = max(base, SEQ.unpack_from(ack)[0])
        else:
            raise OvertimeError("the window baseline made no progress")
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Sample(
        {
            "msgs_per_s": messages / wall,
            "wall_s": wall,
            "retransmissions": retransmissions,
            "client_cpu_us": cpu / messages * 1e6,
        }
    )


def stop_peer(port: int) -> None:
    """Tell the peer at ``port`` to report and exit."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(STOP, ("127.0.0.1", port))


def serve(mode: str, max_datagrams: int) -> dict[str, object]:
    """The peer's loop: blocking ``recvfrom``, then echo or ack, until :data:`STOP`."""
    received = expected = 0
    first_cpu = last_cpu = 0.0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
        for _ in range(max_datagrams):
            data, addr = sock.recvfrom(_RECV_SIZE)
            if data == STOP:
                break
            received += 1
            if mode == "echo":
                sock.sendto(data, addr)
            else:
                if SEQ.unpack_from(data)[0] == expected:
                    expected += 1
                sock.sendto(SEQ.pack(expected), addr)
            last_cpu = time.process_time()
            if received == 1:
                first_cpu = last_cpu
    return {"received": received, "in_order": expected, "cpu_s": last_cpu - first_cpu}


def main() -> int:
    """Parse the arguments, serve, print the report."""
    parser = argparse.ArgumentParser(description="A blocking stdlib UDP peer for the benchmarks.")
    parser.add_argument("mode", choices=["echo", "ack"])
    parser.add_argument("--max-datagrams", type=int, default=10_000_000)
    parser.add_argument("--max-seconds", type=int, default=300)
    parser.add_argument("--cpus", type=cpu_list)
    args = parser.parse_args()
    pin(args.cpus)
    signal.alarm(args.max_seconds)  # a hard bound: SIGALRM ends the process
    report = serve(args.mode, args.max_datagrams)
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
