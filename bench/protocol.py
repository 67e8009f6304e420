"""Benchmark: cost of the signed wire protocol over a real DEALER/ROUTER pair.

Owns nothing the application imports; run it as ``python bench/protocol.py``.
For ipc and tcp loopback it measures request/reply round trips between this
process (DEALER) and a worker-like server process (ROUTER):

* signed:   ``Session.send``/``Session.recv`` (HMAC-SHA256, replay history,
            registry validation) on both sides;
* unsigned: the same frames and the same compact JSON (uuid4 header, date),
            built and parsed by hand without signature or checks.

Payloads: "small" (heartbeat-sized request and reply) and "256KiB" (a small
request answered by one 256 KiB image buffer, the worker's real pattern).
Prints a table and a final parseable ``RESULT`` line (ipc/small is the headline).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from ddtui.protocol import DELIM, Session, new_header  # noqa: E402

BUFFER_BYTES = 256 * 1024
PAYLOADS = {"small": 0, "256KiB": BUFFER_BYTES}


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _dumps(obj: object) -> bytes:
    # the same compact encoder the wire uses, so the baseline differs only by signing/checks
    return _ENCODER.encode(obj).encode("utf-8")


def _plain_frames(msg_type: str, session_id: str, content: dict, parent: dict, buffers: list[bytes]) -> list[bytes]:
    # same JSON work as Session.msg + serialize, minus the signature
    header = new_header(msg_type, session_id)
    return [DELIM, b"", _dumps(header), _dumps(parent), _dumps({}), _dumps(content), *buffers]


def _plain_parse(frames: list[bytes]) -> tuple[list[bytes], dict, dict, list[bytes]]:
    i = frames.index(DELIM)
    body = frames[i + 2 :]
    header = json.loads(body[0])
    json.loads(body[1])
    json.loads(body[2])
    content = json.loads(body[3])
    return frames[:i], header, content, body[4:]


def _serve(endpoint: str, mode: str, key: bytes, ready: mp.Queue) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    sock.bind(endpoint)
    ready.put(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    image = os.urandom(BUFFER_BYTES)
    session = Session(key)
    try:
        while True:
            if mode == "signed":
                idents, msg = session.recv(sock)
                if msg.msg_type == "shutdown":
                    return
                size = msg.content["params"]["reply_bytes"]
                if size:
                    info = {"width": 512, "height": 512}
                    session.send(sock, "image", {"job_id": "b", "index": 0, "info": info},
                                 parent=msg, buffers=[image[:size]], ident=idents)
                else:
                    session.send(sock, "ack", {"job_id": "b"}, parent=msg, ident=idents)
            else:
                idents, header, content, _ = _plain_parse(sock.recv_multipart())
                if header["msg_type"] == "shutdown":
                    return
                size = content["params"]["reply_bytes"]
                if size:
                    reply = _plain_frames("image", session.session, {"job_id": "b", "index": 0, "info": {"width": 512, "height": 512}},
                                          header, [image[:size]])
                else:
                    reply = _plain_frames("ack", session.session, {"job_id": "b"}, header, [])
                sock.send_multipart([*idents, *reply], copy=False)
    finally:
        sock.close()
        ctx.term()


def _round_trips(sock: zmq.Socket, mode: str, session: Session, reply_bytes: int, count: int) -> float:
    """Run ``count`` round trips; returns elapsed seconds."""
    content = {"job_id": "b", "params": {"prompt": "a lighthouse at dusk", "steps": 20, "reply_bytes": reply_bytes}}
    start = time.perf_counter()
    if mode == "signed":
        for _ in range(count):
            session.send(sock, "generate", content)
            _, reply = session.recv(sock)
            assert len(reply.buffers) == (1 if reply_bytes else 0)
    else:
        for _ in range(count):
            sock.send_multipart(_plain_frames("generate", session.session, content, {}, []), copy=False)
            _, _, _, buffers = _plain_parse(sock.recv_multipart())
            assert len(buffers) == (1 if reply_bytes else 0)
    return time.perf_counter() - start


class _Loopback:
    """A socket stand-in that hands back what was sent (ROUTER ident added/stripped)."""

    def __init__(self, ident: bytes | None) -> None:
        self.ident, self.frames = ident, []

    def send_multipart(self, frames, flags=0, copy=True):
        self.frames = list(frames)

    def recv_multipart(self, flags=0, copy=True):
        return [self.ident, *self.frames] if self.ident else self.frames[1:]


def _codec_round_trips(mode: str, key: bytes, reply_bytes: int, count: int) -> float:
    """Both ends' CPU work for ``count`` round trips, no transport; returns elapsed seconds."""
    image = os.urandom(BUFFER_BYTES)[:reply_bytes]
    client, server = Session(key), Session(key)
    up, down = _Loopback(b"peer"), _Loopback(None)
    content = {"job_id": "b", "params": {"prompt": "a lighthouse at dusk", "steps": 20, "reply_bytes": reply_bytes}}
    bufs = [image] if reply_bytes else []
    reply_type, reply_content = ("image", {"job_id": "b", "index": 0, "info": {}}) if reply_bytes else ("ack", {"job_id": "b"})
    start = time.perf_counter()
    if mode == "signed":
        for _ in range(count):
            client.send(up, "generate", content)
            idents, msg = server.recv(up)
            server.send(down, reply_type, reply_content, parent=msg, buffers=bufs, ident=idents)
            client.recv(down)
    else:
        for _ in range(count):
            up.send_multipart(_plain_frames("generate", client.session, content, {}, []))
            idents, header, _, _ = _plain_parse(up.recv_multipart())
            down.send_multipart([*idents, *_plain_frames(reply_type, server.session, reply_content, header, bufs)])
            _plain_parse(down.recv_multipart())
    return time.perf_counter() - start


def _measure_codec(key: bytes, counts: dict[str, int], repeats: int) -> dict[tuple[str, str], dict[str, float]]:
    out: dict[tuple[str, str], dict[str, float]] = {}
    for payload, reply_bytes in PAYLOADS.items():
        for mode in ("signed", "unsigned"):
            count = counts[payload]
            _codec_round_trips(mode, key, reply_bytes, max(50, count // 10))
            runs = [_codec_round_trips(mode, key, reply_bytes, count) / count for _ in range(repeats)]
            out.setdefault(("none", payload), {})[mode] = statistics.median(runs) * 1e6
    return out


def _measure(endpoint_spec: str, mode: str, key: bytes, counts: dict[str, int], repeats: int) -> dict[str, float]:
    """Start a server for ``mode``; return microseconds per round trip for each payload."""
    spawn = mp.get_context("spawn")
    ready = spawn.Queue()
    proc = spawn.Process(target=_serve, args=(endpoint_spec, mode, key, ready), daemon=True)
    proc.start()
    endpoint = ready.get(timeout=30)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    session = Session(key)
    out: dict[str, float] = {}
    try:
        for name, reply_bytes in PAYLOADS.items():
            count = counts[name]
            _round_trips(sock, mode, session, reply_bytes, max(50, count // 10))  # warm up
            runs = [_round_trips(sock, mode, session, reply_bytes, count) / count for _ in range(repeats)]
            out[name] = statistics.median(runs) * 1e6
        if mode == "signed":
            session.send(sock, "shutdown")
        else:
            sock.send_multipart(_plain_frames("shutdown", session.session, {}, {}, []))
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
        sock.close()
        ctx.term()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000, help="round trips per run for small messages")
    parser.add_argument("--count-large", type=int, default=1000, help="round trips per run for 256 KiB replies")
    parser.add_argument("--repeats", type=int, default=5, help="runs per cell; the median is reported")
    args = parser.parse_args()

    key = Session.new_key()
    counts = {"small": args.count, "256KiB": args.count_large}
    tmp = tempfile.mkdtemp(prefix="ddtui-bench-")
    transports = {"ipc": f"ipc://{tmp}/bench.sock", "tcp": "tcp://127.0.0.1:0"}
    results: dict[tuple[str, str], dict[str, float]] = {}
    try:
        for transport, endpoint in transports.items():
            for mode in ("signed", "unsigned"):
                for payload, us in _measure(endpoint, mode, key, counts, args.repeats).items():
                    results.setdefault((transport, payload), {})[mode] = us
        # no transport: what signing/verification costs in CPU alone
        results.update(_measure_codec(key, counts, args.repeats))
    finally:
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)

    print(f"ddtui protocol round trips (pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}, "
          f"python {sys.version.split()[0]}, median of {args.repeats} runs)")
    head = f"{'transport':<9} {'payload':<7} {'signed us':>10} {'unsigned us':>12} {'ratio':>6} {'signed rt/s':>12} {'unsigned rt/s':>14}"
    print(head)
    print("-" * len(head))
    for (transport, payload), cell in results.items():
        s, u = cell["signed"], cell["unsigned"]
        print(f"{transport:<9} {payload:<7} {s:>10.1f} {u:>12.1f} {s / u:>6.2f} {1e6 / s:>12.0f} {1e6 / u:>14.0f}")

    print('transport "none" = both ends\' encode/sign/verify/decode work in one process, no sockets')
    head_cell = results[("ipc", "small")]
    extra = " ".join(
        f"{t}_{p.lower()}_signed_rtt_us={c['signed']:.1f} {t}_{p.lower()}_unsigned_rtt_us={c['unsigned']:.1f}"
        for (t, p), c in results.items()
    )
    print(
        f"RESULT protocol_signed_rtt_us={head_cell['signed']:.1f} "
        f"baseline_unsigned_rtt_us={head_cell['unsigned']:.1f} "
        f"ratio={head_cell['signed'] / head_cell['unsigned']:.2f} {extra}"
    )


if __name__ == "__main__":
    main()
