"""Unit tests for ddtui.protocol: framing, signing, rejections, registry, key files."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddtui.protocol import (
    DELIM,
    REGISTRY,
    REJECTION_REASONS,
    BadSignature,
    Direction,
    KeyFileError,
    MalformedMessage,
    Message,
    MessageSpec,
    OversizedMessage,
    ProtocolError,
    ReplayedMessage,
    Session,
    UnknownMessageType,
    UnsignedMessage,
    deserialize,
    init_keys,
    key_to_pipe,
    load_public,
    load_secret,
    read_key_file,
    read_key_from_fd,
    serialize,
    sign,
    types_for,
    validate,
    write_key_file,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4 + b"\x00" * 17


@pytest.fixture
def key() -> bytes:
    return Session.new_key()


@pytest.fixture
def sender(key: bytes) -> Session:
    return Session(key)


@pytest.fixture
def receiver(key: bytes) -> Session:
    return Session(key)


def _image(sender: Session) -> dict:
    return sender.msg("image", {"job_id": "j1", "index": 0, "info": {"seed": 42}}, buffers=[PNG])


def _resign(frames: list[bytes], key: bytes) -> list[bytes]:
    """Re-sign frames after deliberately corrupting a signed part."""
    i = frames.index(DELIM)
    return [*frames[: i + 1], sign(key, frames[i + 2 :]), *frames[i + 2 :]]


def _reject(receiver: Session, frames: list[bytes], exc: type[ProtocolError]) -> ProtocolError:
    with pytest.raises(exc) as info:
        receiver.deserialize(frames)
    assert info.value.reason in REJECTION_REASONS
    return info.value


# --------------------------------------------------------------------------- round trip


def test_round_trip(sender: Session, receiver: Session) -> None:
    msg = sender.msg("progress", {"job_id": "j1", "step": 3, "steps": 20, "phase": "sampling", "elapsed": 1.5})
    frames = sender.serialize(msg, [b"peer-1"])
    idents, got = receiver.deserialize(frames)
    assert idents == [b"peer-1"]
    assert isinstance(got, Message)
    assert got.msg_type == "progress"
    assert got.msg_id == msg["msg_id"]
    assert got.content == msg["content"]
    assert got.header == msg["header"]
    assert got.parent_id is None
    assert not receiver.rejections


def test_header_fields(sender: Session) -> None:
    header = sender.msg("status")["header"]
    assert set(header) >= {"msg_id", "msg_type", "session", "date", "version"}
    assert len(header["msg_id"]) == 32 and int(header["msg_id"], 16) >= 0
    assert header["version"] == "1"
    assert header["date"].endswith("Z")
    assert header["session"] == sender.session


def test_frames_are_compact_json(sender: Session) -> None:
    frames = sender.serialize(sender.msg("token", {"job_id": "j", "text": "héllo"}))
    i = frames.index(DELIM)
    assert frames[i + 1] == frames[i + 1].lower() and len(frames[i + 1]) == 64
    content = frames[i + 5]
    assert b" " not in content and json.loads(content) == {"job_id": "j", "text": "héllo"}
    assert "héllo".encode() in content  # utf-8, not \\u escapes


def test_buffers_survive_byte_exact(sender: Session, receiver: Session) -> None:
    blobs = [PNG, b"", bytes(range(256)), b"<IDS|MSG>"]
    msg = sender.msg("image", {"job_id": "j", "index": 1, "info": {}}, buffers=blobs)
    _, got = receiver.deserialize(sender.serialize(msg))
    assert got.buffers == blobs
    assert all(type(b) is bytes for b in got.buffers)


def test_parent_header_ties_reply_to_request(key: bytes) -> None:
    client, worker = Session(key), Session(key)
    client_view = Session(key)
    request = client.msg("generate", {"job_id": "j9", "params": {"prompt": "cat"}})
    _, req = worker.deserialize(client.serialize(request, [b"client"]))
    for parent in (req, req.to_dict(), req.header):
        reply = worker.msg("ack", {"job_id": "j9"}, parent=parent)
        _, got = client_view.deserialize(worker.serialize(reply))
        assert got.parent_id == request["msg_id"]
        assert got.parent_header == request["header"]


def test_serialize_accepts_message_and_single_ident(sender: Session, receiver: Session, key: bytes) -> None:
    msg = Message(header=sender.msg("status")["header"])
    idents, got = deserialize(serialize(msg, b"solo", key=key), key=key)
    assert idents == [b"solo"] and got.msg_type == "status"


# --------------------------------------------------------------------------- rejections


def test_unsigned(sender: Session, receiver: Session) -> None:
    frames = sender.serialize(sender.msg("status"))
    frames[frames.index(DELIM) + 1] = b""
    _reject(receiver, frames, UnsignedMessage)
    assert receiver.rejections == {"unsigned": 1}


def test_wrong_key(receiver: Session) -> None:
    rogue = Session(Session.new_key())
    _reject(receiver, rogue.serialize(rogue.msg("status")), BadSignature)
    assert receiver.rejections == {"bad_signature": 1}


@pytest.mark.parametrize("part", ["header", "parent", "metadata", "content", "buffer"])
def test_tampered_parts_rejected(sender: Session, receiver: Session, part: str) -> None:
    msg = _image(sender)
    msg["parent_header"] = sender.msg("generate")["header"]
    frames = sender.serialize(msg)
    i = frames.index(DELIM)
    index = {"header": 2, "parent": 3, "metadata": 4, "content": 5, "buffer": 6}[part]
    if part == "metadata":
        frames[i + index] = b'{"admin":true}'
    elif part == "buffer":
        frames[i + index] = frames[i + index][:-1] + b"\x01"  # one flipped byte in the PNG
    else:
        frames[i + index] = frames[i + index].replace(b"j", b"k", 1).replace(b"a", b"b", 1)
    _reject(receiver, frames, BadSignature)
    assert receiver.rejections == {"bad_signature": 1}


def test_buffer_boundaries_are_signed(sender: Session, receiver: Session) -> None:
    """Moving bytes between buffers, or adding/dropping one, breaks the signature."""
    msg = sender.msg("image", {"job_id": "j", "index": 0, "info": {}}, buffers=[b"ab", b"c"])
    frames = sender.serialize(msg)
    shifted = frames[:-2] + [b"a", b"bc"]
    _reject(receiver, shifted, BadSignature)
    _reject(receiver, frames + [b""], BadSignature)
    _reject(receiver, frames[:-1], BadSignature)
    assert receiver.rejections == {"bad_signature": 3}
    receiver.deserialize(frames)  # the original is still fine


@pytest.mark.parametrize("sizes", [[2, 0, 30], [70_000], [10, 65_536, 1, 0]])
def test_sign_matches_reference_for_joined_and_streamed_paths(key: bytes, sizes: list[int]) -> None:
    import hashlib
    import hmac
    import struct

    parts = [os.urandom(n) for n in sizes]
    reference = hmac.new(key, b"".join(struct.pack(">Q", len(p)) + p for p in parts), hashlib.sha256)
    assert sign(key, parts) == reference.hexdigest().encode()


def test_replay(sender: Session, receiver: Session) -> None:
    frames = sender.serialize(sender.msg("cancel", {"job_id": "j"}))
    receiver.deserialize(frames)
    _reject(receiver, frames, ReplayedMessage)
    # a different route for the same body is still a replay
    _reject(receiver, [b"other", *frames], ReplayedMessage)
    assert receiver.rejections == {"replayed": 2}


def test_replay_history_is_bounded(key: bytes) -> None:
    sender, receiver = Session(key), Session(key, replay_history=4)
    first = sender.serialize(sender.msg("status"))
    receiver.deserialize(first)
    for _ in range(4):
        receiver.deserialize(sender.serialize(sender.msg("status")))
    assert len(receiver._digests) == 4 == len(receiver._digest_set)
    # evicted from the window: accepted again (the per-run key bounds this)
    receiver.deserialize(first)


def test_oversized_checked_before_parsing(key: bytes) -> None:
    sender, receiver = Session(key), Session(key, max_message_bytes=4096)
    ok = sender.msg("image", {"job_id": "j", "index": 0, "info": {}}, buffers=[b"x" * 1000])
    receiver.deserialize(sender.serialize(ok))
    big = sender.msg("image", {"job_id": "j", "index": 0, "info": {}}, buffers=[b"x" * 5000])
    _reject(receiver, sender.serialize(big), OversizedMessage)
    # even garbage that would be malformed is reported as oversized: size comes first
    _reject(receiver, [b"\xff" * 5000], OversizedMessage)
    # identities count towards the cap too
    _reject(receiver, [b"i" * 4000] + sender.serialize(ok), OversizedMessage)
    assert receiver.rejections == {"oversized": 3}


def test_sender_refuses_oversized(key: bytes) -> None:
    class Sink:
        def send_multipart(self, *a, **k):  # pragma: no cover - must not be reached
            raise AssertionError("sent")

    small = Session(key, max_message_bytes=1024)
    with pytest.raises(OversizedMessage):
        small.send(Sink(), "image", {"job_id": "j", "index": 0, "info": {}}, buffers=[b"x" * 2048])
    assert not small.rejections  # outgoing errors are not receive rejections


def _signed_raw(key: bytes, header: bytes, parent=b"{}", metadata=b"{}", content=b"{}", *buffers: bytes):
    parts = [header, parent, metadata, content, *buffers]
    return [DELIM, sign(key, parts), *parts]


def _header(**overrides) -> bytes:
    header = {"msg_id": "a" * 32, "msg_type": "status", "session": "s", "date": "2024-01-01T00:00:00Z", "version": "1"}
    header.update(overrides)
    return json.dumps({k: v for k, v in header.items() if v is not ...}).encode()


MALFORMED = {
    "no_delimiter": lambda k: [b"x", b"y", b"z", b"{}", b"{}", b"{}"],
    "too_few_frames": lambda k: [DELIM, b"sig", b"{}", b"{}"],
    "empty": lambda k: [],
    "bad_json_header": lambda k: _signed_raw(k, b"{not json"),
    "bad_utf8_content": lambda k: _signed_raw(k, _header(), b"{}", b"{}", b"\xff\xfe"),
    "header_not_object": lambda k: _signed_raw(k, b"[1,2]"),
    "missing_msg_id": lambda k: _signed_raw(k, _header(msg_id=...)),
    "missing_session": lambda k: _signed_raw(k, _header(session=...)),
    "msg_id_not_str": lambda k: _signed_raw(k, _header(msg_id=7)),
    "wrong_version": lambda k: _signed_raw(k, _header(version="2")),
    "parent_not_object": lambda k: _signed_raw(k, _header(), b"null"),
    "metadata_not_object": lambda k: _signed_raw(k, _header(), b"{}", b'"x"'),
    "content_list": lambda k: _signed_raw(k, _header(), b"{}", b"{}", b"[]"),
    "nan_constant": lambda k: _signed_raw(k, _header(), b"{}", b"{}", b'{"x":NaN}'),
    "deep_nesting": lambda k: _signed_raw(k, _header(), b"{}", b"{}", b'{"x":' + b"[" * 100000 + b"]" * 100000 + b"}"),
    "missing_field": lambda k: _signed_raw(k, _header(msg_type="cancel")),
    "mistyped_field": lambda k: _signed_raw(k, _header(msg_type="cancel"), b"{}", b"{}", b'{"job_id":5}'),
    "bool_is_not_int": lambda k: _signed_raw(
        k, _header(msg_type="progress"), b"{}", b"{}",
        b'{"job_id":"j","step":true,"steps":2,"phase":"x","elapsed":0}',
    ),
    "image_without_buffer": lambda k: _signed_raw(
        k, _header(msg_type="image"), b"{}", b"{}", b'{"job_id":"j","index":0,"info":{}}'
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed(receiver: Session, key: bytes, case: str) -> None:
    _reject(receiver, MALFORMED[case](key), MalformedMessage)
    assert receiver.rejections == {"malformed": 1}


def test_unknown_type(receiver: Session, key: bytes) -> None:
    _reject(receiver, _signed_raw(key, _header(msg_type="rm_rf")), UnknownMessageType)
    assert receiver.rejections == {"unknown_type": 1}


def test_direction_filter_rejects_reflected_events(key: bytes) -> None:
    worker = Session(key, accept=[Direction.REQUEST])
    client = Session(key, accept=[Direction.EVENT])
    pong = worker.msg("heartbeat")
    event = worker.msg("progress", {"job_id": "j", "step": 1, "steps": 2, "phase": "p", "elapsed": 0})
    # the worker's own event reflected back at it is refused
    _reject(worker, worker.serialize(event), UnknownMessageType)
    client.deserialize(worker.serialize(event))
    worker.deserialize(client.serialize(client.msg("heartbeat")))  # heartbeat goes both ways
    client.deserialize(worker.serialize(pong))
    with pytest.raises(ValueError):
        Session(key, accept=["sideways"])


def test_rejections_are_logged_without_the_key(receiver: Session, key: bytes, caplog) -> None:
    rogue = Session(Session.new_key())
    with caplog.at_level(logging.DEBUG, logger="ddtui.protocol"):
        with pytest.raises(BadSignature):
            receiver.deserialize(rogue.serialize(rogue.msg("status")))
    records = [r for r in caplog.records if r.name == "ddtui.protocol"]
    assert records and "bad_signature" in records[0].getMessage()
    text = caplog.text
    assert key.hex() not in text and repr(key) not in text
    assert key.hex() not in repr(receiver)


def test_recv_safely_counts_and_returns_none(sender: Session, receiver: Session) -> None:
    class FakeSocket:
        def __init__(self, queue):
            self.queue = list(queue)

        def recv_multipart(self, flags=0, copy=True):
            return self.queue.pop(0)

    good = sender.serialize(sender.msg("status"))
    sock = FakeSocket([[b"junk"], good, good])
    assert receiver.recv_safely(sock) is None
    assert receiver.recv_safely(sock)[1].msg_type == "status"
    assert receiver.recv_safely(sock) is None
    assert receiver.rejections == {"malformed": 1, "replayed": 1}


def test_short_key_refused() -> None:
    with pytest.raises(ValueError):
        Session(b"short")
    assert len(Session.new_key()) == 32 and Session.new_key() != Session.new_key()


# --------------------------------------------------------------------------- registry


def test_registry_contents() -> None:
    requests = {"hello_request", "load_model", "generate", "upscale", "chat", "cancel", "shutdown", "heartbeat", "status"}
    events = {"hello", "ack", "progress", "preview", "image", "token", "result", "error", "heartbeat", "state"}
    core_in = {"submit", "cancel_job", "cancel_group", "retry_job", "set_priority", "pause_queue", "resume_queue",
               "subscribe", "unsubscribe", "core_status", "core_ping", "stop_service",
               "history.rate", "history.favorite", "history.tags", "history.delete", "history.import",
               "style.save", "style.delete", "snippet.save", "snippet.delete", "snippet.use",
               "preset.save", "preset.delete", "setting.set", "config.save"}
    core_out = {"job_event", "queue_state", "reply"}
    assert types_for(Direction.REQUEST) == requests
    assert types_for(Direction.EVENT) == events
    assert types_for(Direction.CORE_REQUEST) == core_in
    assert types_for(Direction.CORE_EVENT) == core_out
    assert set(REGISTRY) == requests | events | core_in | core_out
    assert all(isinstance(spec, MessageSpec) for spec in REGISTRY.values())
    with pytest.raises(TypeError):
        REGISTRY["x"] = REGISTRY["status"]  # type: ignore[index]


def test_validate_fields(sender: Session) -> None:
    hello = {
        "backend": "cuda", "device": "RTX 4090", "vram_total": 24 << 30, "vram_free": 20 << 30,
        "versions": {"stable-diffusion-cpp-python": "0.4.7"}, "loaded_model": None,
    }
    assert validate(sender.msg("hello", hello)).name == "hello"
    with pytest.raises(MalformedMessage):
        validate(sender.msg("hello", {**hello, "vram_free": "lots"}))
    with pytest.raises(MalformedMessage):
        validate(sender.msg("error", {"reason": "oom"}))
    validate(sender.msg("error", {"reason": "oom", "message": "out of memory", "job_id": None}))
    validate(sender.msg("progress", {"job_id": "j", "step": 1, "steps": 2, "phase": "p", "elapsed": 3, "extra": 1}))
    with pytest.raises(UnknownMessageType):
        validate({"header": {"msg_type": "nope"}, "content": {}})


def test_send_validates_outgoing(sender: Session) -> None:
    class Sink:
        sent = None

        def send_multipart(self, frames, flags=0, copy=True):
            self.sent = frames

    sink = Sink()
    with pytest.raises(MalformedMessage):
        sender.send(sink, "cancel", {})
    with pytest.raises(UnknownMessageType):
        sender.send(sink, "bogus")
    assert sink.sent is None
    msg = sender.send(sink, "cancel", {"job_id": "j"}, ident=[b"a", b"b"])
    assert sink.sent[:3] == [b"a", b"b", DELIM] and msg["content"] == {"job_id": "j"}


# --------------------------------------------------------------------------- property


frame = st.binary(max_size=64) | st.sampled_from([DELIM, b"", b"{}", b"[]", b"null", _header()])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(frame, max_size=12))
def test_random_frames_never_accepted(frames: list[bytes]) -> None:
    receiver = Session(b"k" * 32, max_message_bytes=512)
    try:
        receiver.deserialize(frames)
    except ProtocolError as exc:
        assert exc.reason in REJECTION_REASONS
        assert sum(receiver.rejections.values()) == 1
    else:  # pragma: no cover - would be a forgery
        pytest.fail(f"accepted unsigned frames {frames!r}")


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
json_frame = st.builds(lambda v: json.dumps(v).encode(), json_value) | st.binary(max_size=32)
header_frame = st.builds(
    lambda t, v, extra: _header(msg_type=t, version=v, **extra),
    st.sampled_from(sorted(REGISTRY) + ["nope", ""]),
    st.sampled_from(["1", "1", "2"]),
    st.dictionaries(st.sampled_from(["msg_id", "session", "date"]), json_value, max_size=1),
) | json_frame


@settings(max_examples=300, deadline=None)
@given(header=header_frame, rest=st.lists(json_frame, min_size=3, max_size=6), tamper=st.booleans())
def test_random_signed_frames_only_raise_protocol_errors(header: bytes, rest: list[bytes], tamper: bool) -> None:
    key = b"k" * 32
    receiver = Session(key)
    parts = [header, *rest]
    frames = [DELIM, sign(key, parts), *parts]
    if tamper:
        frames[-1] = frames[-1] + b" "
    try:
        _, msg = receiver.deserialize(frames)
    except ProtocolError as exc:
        assert exc.reason in REJECTION_REASONS
    else:
        assert not tamper, "a tampered frame was accepted"
        assert msg.msg_type in REGISTRY


# --------------------------------------------------------------------------- key files


def test_key_file_round_trip(tmp_path: Path) -> None:
    key = Session.new_key()
    path = write_key_file(tmp_path, key)
    assert path.parent == tmp_path and path.name.startswith(".ddtui-key-")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_uid == os.getuid()
    assert read_key_file(path) == key
    assert not path.exists(), "key file must be unlinked after reading"


def test_key_file_names_are_random_and_exclusive(tmp_path: Path) -> None:
    a, b = write_key_file(tmp_path, b"1" * 32), write_key_file(tmp_path, b"2" * 32)
    assert a != b
    assert read_key_file(a, delete=False) == b"1" * 32 and a.exists()


def test_key_file_mode_ignores_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = write_key_file(tmp_path, b"x" * 32)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_refuse_group_or_world_accessible_key_file(tmp_path: Path, mode: int) -> None:
    path = write_key_file(tmp_path, b"x" * 32)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError):
        read_key_file(path)
    assert path.exists(), "a refused file is left for inspection"


def test_refuse_symlinked_key_file(tmp_path: Path) -> None:
    real = write_key_file(tmp_path, b"x" * 32)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(OSError):
        read_key_file(link)


def test_key_via_inherited_pipe() -> None:
    key = Session.new_key()
    fd = key_to_pipe(key)
    code = (
        "import sys; from ddtui.protocol import read_key_from_fd;"
        "sys.stdout.write(read_key_from_fd(int(sys.argv[1])).hex())"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", code, str(fd)],
            pass_fds=[fd], capture_output=True, text=True, check=True, timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
    finally:
        os.close(fd)
    assert out.stdout == key.hex()
    assert key.hex() not in " ".join(out.args)  # the fd number travels, not the key


def test_read_key_from_fd_in_process() -> None:
    fd = key_to_pipe(b"z" * 32)
    assert read_key_from_fd(fd) == b"z" * 32
    with pytest.raises(OSError):
        os.fstat(fd)  # closed after reading


# --------------------------------------------------------------------------- CURVE certificates


def test_init_keys_layout_and_modes(tmp_path: Path) -> None:
    paths = init_keys(tmp_path / "keys")
    for secret in (paths.server_secret, paths.client_secret):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert len(load_secret(secret)) == 40
    assert stat.S_IMODE(paths.keys_dir.stat().st_mode) == 0o700
    assert load_public(paths.server_public) == load_public(paths.server_secret)
    assert load_public(paths.allowed_clients / "client.key") == load_public(paths.client_public)
    assert load_public(paths.server_public) != load_public(paths.client_public)


def test_init_keys_does_not_overwrite_unless_forced(tmp_path: Path) -> None:
    first = init_keys(tmp_path)
    server = load_public(first.server_public)
    assert load_public(init_keys(tmp_path).server_public) == server
    forced = init_keys(tmp_path, force=True)
    assert load_public(forced.server_public) != server
    assert load_public(forced.allowed_clients / "client.key") == load_public(forced.client_public)


def test_load_secret_refuses_loose_permissions(tmp_path: Path) -> None:
    paths = init_keys(tmp_path)
    os.chmod(paths.client_secret, 0o644)
    with pytest.raises(KeyFileError):
        load_secret(paths.client_secret)


def test_protocol_does_not_import_textual() -> None:
    code = (
        "import sys, ddtui.protocol, ddtui.protocol.wire, ddtui.protocol.messages, ddtui.protocol.keys;"
        "sys.exit(any(m == 'textual' or m.startswith('textual.') for m in sys.modules))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
