"""Integration tests: signed messages over real ZeroMQ sockets (ipc, tcp, CURVE on tcp)."""

from __future__ import annotations

import faulthandler
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

from ddtui.protocol import (
    DELIM,
    Direction,
    KeyPaths,
    Message,
    Session,
    configure_curve_client,
    configure_curve_server,
    init_keys,
    start_authenticator,
)

REPLY_TIMEOUT_MS = 5000
SILENCE_MS = 800  # how long a refused client waits to be sure nothing comes back


class EchoServer(threading.Thread):
    """A ROUTER worker stand-in: answers heartbeat with heartbeat, generate with image(s)."""

    def __init__(
        self,
        ctx: zmq.Context,
        endpoint: str,
        key: bytes,
        *,
        curve: KeyPaths | None = None,
        max_message_bytes: int | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.ctx, self.endpoint, self.curve = ctx, endpoint, curve
        kwargs = {"max_message_bytes": max_message_bytes} if max_message_bytes else {}
        self.session = Session(key, accept=[Direction.REQUEST], **kwargs)
        self.accepted: list[tuple[list[bytes], Message]] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        sock = self.ctx.socket(zmq.ROUTER)
        sock.linger = 0
        try:
            if self.curve is not None:
                configure_curve_server(sock, self.curve.server_secret, self.curve.server_public)
            sock.bind(self.endpoint)
            self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            self.ready.set()
            while not self.stop.is_set():
                if not sock.poll(20):
                    continue
                got = self.session.recv_safely(sock, zmq.NOBLOCK)
                if got is None:
                    continue  # rejected and counted; keep serving
                idents, msg = got
                self.accepted.append((idents, msg))
                if msg.msg_type == "heartbeat":
                    self.session.send(sock, "heartbeat", {"seq": msg.content.get("seq", 0)}, parent=msg, ident=idents)
                elif msg.msg_type == "generate":
                    for i, buf in enumerate(msg.buffers):
                        info = {"size": len(buf)}
                        self.session.send(
                            sock, "image", {"job_id": msg.content["job_id"], "index": i, "info": info},
                            parent=msg, buffers=[buf], ident=idents,
                        )
        except BaseException as exc:  # surfaced by the fixture
            self.error = exc
            self.ready.set()
        finally:
            sock.close()

    def wait_rejections(self, total: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while sum(self.session.rejections.values()) < total and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    # a wedged socket test dumps every thread's stack and exits instead of hanging CI
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # ipc paths are limited to ~107 bytes; pytest's tmp_path can be longer
    path = Path(tempfile.mkdtemp(prefix="ddtui-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def serve(ctx: zmq.Context) -> Iterator[Callable[..., EchoServer]]:
    servers: list[EchoServer] = []

    def start(endpoint: str, key: bytes, **kwargs) -> EchoServer:
        server = EchoServer(ctx, endpoint, key, **kwargs)
        server.start()
        assert server.ready.wait(5)
        if server.error:
            raise server.error
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop.set()
        server.join(5)
        assert server.error is None, server.error


def _endpoint(transport: str, tmp: Path) -> str:
    return f"ipc://{tmp / 'worker.sock'}" if transport == "ipc" else "tcp://127.0.0.1:0"


def _dealer(ctx: zmq.Context, endpoint: str, routing_id: bytes, curve: tuple | None = None) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    # a DEALER with no live peer blocks on send; fail instead of hanging
    sock.sndtimeo = 2000
    sock.routing_id = routing_id
    if curve is not None:
        configure_curve_client(sock, *curve)
    sock.connect(endpoint)
    return sock


def _expect_reply(session: Session, sock: zmq.Socket, timeout_ms: int = REPLY_TIMEOUT_MS) -> Message:
    assert sock.poll(timeout_ms), "no reply"
    got = session.recv_safely(sock)
    assert got is not None, session.rejections
    return got[1]


def _expect_silence(sock: zmq.Socket, timeout_ms: int = SILENCE_MS) -> None:
    assert not sock.poll(timeout_ms), "a refused client got a reply"


# --------------------------------------------------------------------------- plain transports


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_signed_exchange(ctx, serve, short_tmp, transport: str) -> None:
    key = Session.new_key()
    server = serve(_endpoint(transport, short_tmp), key)
    client = Session(key, accept=[Direction.EVENT])
    sock = _dealer(ctx, server.endpoint, b"good")
    try:
        for seq in range(5):
            sent = client.send(sock, "heartbeat", {"seq": seq})
            reply = _expect_reply(client, sock)
            assert reply.msg_type == "heartbeat" and reply.content == {"seq": seq}
            assert reply.parent_id == sent["msg_id"]

        image = bytes(range(256)) * 1024  # 256 KiB, every byte value
        sent = client.send(sock, "generate", {"job_id": "j1", "params": {"prompt": "x"}}, buffers=[image, b"\x00"])
        first, second = _expect_reply(client, sock), _expect_reply(client, sock)
        assert first.msg_type == second.msg_type == "image"
        assert first.buffers == [image] and second.buffers == [b"\x00"]
        assert first.parent_id == second.parent_id == sent["msg_id"]
    finally:
        sock.close()
    assert [idents for idents, _ in server.accepted] == [[b"good"]] * 6
    assert not server.session.rejections and not client.rejections


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_rogue_client_gets_nothing_and_server_keeps_serving(ctx, serve, short_tmp, transport: str) -> None:
    key = Session.new_key()
    server = serve(_endpoint(transport, short_tmp), key, max_message_bytes=1 << 20)
    client = Session(key, accept=[Direction.EVENT])
    good = _dealer(ctx, server.endpoint, b"good")
    rogue = _dealer(ctx, server.endpoint, b"rogue")
    try:
        # a legitimate exchange the rogue has "captured"
        captured = client.serialize(client.msg("heartbeat", {"seq": 1}))
        good.send_multipart(captured)
        assert _expect_reply(client, good).content == {"seq": 1}

        unsigned = list(captured)
        unsigned[unsigned.index(DELIM) + 1] = b""
        impostor = Session(Session.new_key())
        rogue.send_multipart(unsigned)
        rogue.send_multipart(impostor.serialize(impostor.msg("shutdown")))
        rogue.send_multipart(captured)  # replay
        rogue.send_multipart([b"not", b"a", b"message"])
        rogue.send_multipart(client.serialize(client.msg("generate", {"job_id": "x", "params": {}}, buffers=[b"x" * (2 << 20)])))
        server.wait_rejections(5)
        _expect_silence(rogue)

        # the good client is still served afterwards
        sent = client.send(good, "heartbeat", {"seq": 2})
        reply = _expect_reply(client, good)
        assert reply.content == {"seq": 2} and reply.parent_id == sent["msg_id"]
    finally:
        good.close()
        rogue.close()
    assert server.session.rejections == {"unsigned": 1, "bad_signature": 1, "replayed": 1, "malformed": 1, "oversized": 1}
    assert [(idents, m.content) for idents, m in server.accepted] == [([b"good"], {"seq": 1}), ([b"good"], {"seq": 2})]
    assert all(m.msg_type != "shutdown" for _, m in server.accepted)


# --------------------------------------------------------------------------- CURVE over TCP


@pytest.fixture
def curve_server(ctx, serve, tmp_path):
    keys = init_keys(tmp_path / "keys")
    auth = start_authenticator(ctx, keys.allowed_clients)
    try:
        key = Session.new_key()
        server = serve("tcp://127.0.0.1:0", key, curve=keys)
        yield server, keys, key
    finally:
        auth.stop()


def _good_curve(keys: KeyPaths) -> tuple:
    return (keys.client_secret, keys.client_public, keys.server_public)


def test_curve_allowed_client(ctx, curve_server) -> None:
    server, keys, key = curve_server
    client = Session(key, accept=[Direction.EVENT])
    sock = _dealer(ctx, server.endpoint, b"good", _good_curve(keys))
    try:
        sent = client.send(sock, "heartbeat", {"seq": 7})
        reply = _expect_reply(client, sock)
        assert reply.content == {"seq": 7} and reply.parent_id == sent["msg_id"]
    finally:
        sock.close()


def test_curve_refuses_unknown_client_and_wrong_server_pin(ctx, curve_server, tmp_path) -> None:
    server, keys, key = curve_server
    stranger = init_keys(tmp_path / "stranger")  # valid keys, not in allowed_clients/
    client = Session(key, accept=[Direction.EVENT])

    unknown = _dealer(ctx, server.endpoint, b"unknown", (stranger.client_secret, stranger.client_public, keys.server_public))
    wrong_pin = _dealer(ctx, server.endpoint, b"pinned", (keys.client_secret, keys.client_public, stranger.server_public))
    plain = _dealer(ctx, server.endpoint, b"plain")  # no CURVE at all
    socks = [unknown, wrong_pin, plain]
    try:
        for sock in socks:
            # correctly HMAC-signed: only the CURVE layer can stop these
            client.send(sock, "heartbeat", {"seq": 99})
        for sock in socks:
            _expect_silence(sock)
        assert server.accepted == []

        # HMAC still applies inside CURVE: right CURVE keys, wrong HMAC key
        good = _dealer(ctx, server.endpoint, b"good", _good_curve(keys))
        socks.append(good)
        impostor = Session(Session.new_key())
        impostor.send(good, "heartbeat", {"seq": 1})
        server.wait_rejections(1)
        _expect_silence(good)
        assert server.session.rejections == {"bad_signature": 1}

        # and the server still serves the allowed client
        client.send(good, "heartbeat", {"seq": 2})
        assert _expect_reply(client, good).content == {"seq": 2}
    finally:
        for sock in socks:
            sock.close()
    assert [(idents, m.content) for idents, m in server.accepted] == [([b"good"], {"seq": 2})]
