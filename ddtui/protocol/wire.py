"""Signed multipart wire format and the ``Session`` that speaks it.

This module owns how a ddtui message becomes ZeroMQ frames and back:

    [ident..., b"<IDS|MSG>", signature, header, parent_header, metadata, content, *buffers]

* ``header``/``parent_header``/``metadata``/``content`` are compact UTF-8 JSON.
* ``buffers`` are raw bytes (PNG previews, finished images); never base64.
* ``signature`` is the lowercase hex HMAC-SHA256, keyed with the per-run key,
  over every frame after it: the four JSON frames **and every buffer**.
  Buffers are signed (unlike jupyter) because they carry the images a user
  keeps; an unsigned buffer would let anyone on the path swap a picture.
  Each signed frame is fed to the MAC as an 8-byte big-endian length followed
  by the bytes, so moving bytes between adjacent frames (``[b"ab", b"c"]`` vs
  ``[b"a", b"bc"]``) or appending an empty buffer changes the digest.
* Identities (ROUTER routing frames) are not signed: ROUTER sockets rewrite them.

A receiving ``Session`` rejects, in this order, with a ``ProtocolError``
subclass whose ``reason`` is counted in ``session.rejections``:
``oversized`` (sum of frame sizes above the cap, before any parsing),
``malformed`` (no delimiter, too few frames), ``unsigned`` (empty signature),
``bad_signature``, ``replayed`` (signature already seen), ``malformed``
(bad JSON, header fields, version, non-dict parts), ``unknown_type`` and
finally ``malformed`` again for content that fails ``messages.validate``.

Replay protection is a bounded history of verified signatures (deque + set),
not a timestamp window, so it does not depend on clocks agreeing; the date
stays in the header for logs. A fresh key per run retires every old capture.

The cap is per message and counted; libzmq has already buffered the whole
message by then, so sockets facing untrusted peers may also set
``socket.maxmsgsize`` (a per-frame limit that drops the peer, uncounted).

A ``Session`` is not thread-safe; give each thread (socket) its own, sharing
the key. Nothing here imports Textual.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import struct
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "DELIM",
    "PROTOCOL_VERSION",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_REPLAY_HISTORY",
    "MIN_KEY_BYTES",
    "REJECTION_REASONS",
    "ProtocolError",
    "UnsignedMessage",
    "BadSignature",
    "ReplayedMessage",
    "OversizedMessage",
    "MalformedMessage",
    "UnknownMessageType",
    "Message",
    "Session",
    "serialize",
    "deserialize",
    "sign",
    "new_header",
]

log = logging.getLogger("ddtui.protocol")

DELIM = b"<IDS|MSG>"
PROTOCOL_VERSION = "1"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_REPLAY_HISTORY = 65536
MIN_KEY_BYTES = 16
HEADER_FIELDS = ("msg_id", "msg_type", "session", "date", "version")
# signature, header, parent_header, metadata, content
_MIN_FRAMES_AFTER_DELIM = 5
_LEN = struct.Struct(">Q")


# --------------------------------------------------------------------------- errors


class ProtocolError(Exception):
    """A received message was rejected; ``reason`` is a stable code for counters."""

    reason = "malformed"

    def __init__(self, detail: str = "", *, msg_type: str | None = None) -> None:
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)
        self.detail = detail
        self.msg_type = msg_type


class UnsignedMessage(ProtocolError):
    reason = "unsigned"


class BadSignature(ProtocolError):
    reason = "bad_signature"


class ReplayedMessage(ProtocolError):
    reason = "replayed"


class OversizedMessage(ProtocolError):
    reason = "oversized"


class MalformedMessage(ProtocolError):
    reason = "malformed"


class UnknownMessageType(ProtocolError):
    reason = "unknown_type"


REJECTION_REASONS = (
    "unsigned",
    "bad_signature",
    "replayed",
    "oversized",
    "malformed",
    "unknown_type",
)


# --------------------------------------------------------------------------- message


@dataclass(slots=True)
class Message:
    """One decoded, verified message (identities are returned separately)."""

    header: dict[str, Any]
    parent_header: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] = field(default_factory=dict)
    buffers: list[bytes] = field(default_factory=list)

    @property
    def msg_type(self) -> str:
        return str(self.header["msg_type"])

    @property
    def msg_id(self) -> str:
        return str(self.header["msg_id"])

    @property
    def parent_id(self) -> str | None:
        return self.parent_header.get("msg_id")

    def to_dict(self) -> dict[str, Any]:
        """The same shape ``Session.msg`` returns (handy as a ``parent``)."""
        return {
            "header": self.header,
            "msg_id": self.msg_id,
            "msg_type": self.msg_type,
            "parent_header": self.parent_header,
            "metadata": self.metadata,
            "content": self.content,
            "buffers": list(self.buffers),
        }


# --------------------------------------------------------------------------- helpers


# allow_nan=False: NaN/Infinity are not JSON and other parsers choke on them
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _dumps(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-JSON constant {name}")


# built once: json.loads with keyword arguments builds a decoder per call
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(frame: bytes, what: str) -> dict[str, Any]:
    try:
        # decode first: json.loads(bytes) would also accept UTF-16/32
        obj = _DECODER.decode(frame.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # RecursionError: deeply nested arrays from a (signed but buggy) peer
        raise MalformedMessage(f"{what} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise MalformedMessage(f"{what} is not a JSON object")
    return obj


def _utcnow_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_header(msg_type: str, session_id: str) -> dict[str, Any]:
    """A fresh header: uuid4 hex id, type, session id, ISO UTC date, version."""
    return {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "session": session_id,
        "date": _utcnow_iso(),
        "version": PROTOCOL_VERSION,
    }


def _as_bytes(frame: Any) -> bytes:
    if isinstance(frame, bytes):
        return frame
    if isinstance(frame, (bytearray, memoryview)):
        return bytes(frame)
    buf = getattr(frame, "bytes", None)  # zmq.Frame
    if isinstance(buf, bytes):
        return buf
    raise MalformedMessage(f"frame of type {type(frame).__name__} is not bytes")


# parts below this size are joined and hashed in one C call; larger ones
# are streamed so a 256 KiB image is never copied just to be signed
_JOIN_LIMIT = 64 * 1024


def sign(key: bytes, parts: Iterable[bytes]) -> bytes:
    """Hex HMAC-SHA256 over length-prefixed ``parts`` (header, parent, metadata, content, *buffers)."""
    parts = list(parts)
    if sum(map(len, parts)) <= _JOIN_LIMIT:
        data = b"".join([_LEN.pack(len(part)) + part for part in parts])
        return hmac.digest(key, data, "sha256").hex().encode("ascii")
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(_LEN.pack(len(part)))
        mac.update(part)
    return mac.hexdigest().encode("ascii")


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError("key must be bytes")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"HMAC key must be at least {MIN_KEY_BYTES} bytes (use Session.new_key())")
    return bytes(key)


def _parent_header(parent: Any) -> dict[str, Any]:
    """Accept a Message, a msg dict, a bare header, or None."""
    if parent is None:
        return {}
    if isinstance(parent, Message):
        return dict(parent.header)
    if isinstance(parent, Mapping):
        header = parent.get("header")
        if isinstance(header, Mapping):
            return dict(header)
        return dict(parent)
    raise TypeError(f"parent must be a Message, msg dict or header, not {type(parent).__name__}")


def _parts(msg: Message | Mapping[str, Any]) -> tuple[Any, Any, Any, Any, Sequence[Any]]:
    if isinstance(msg, Message):
        return msg.header, msg.parent_header, msg.metadata, msg.content, msg.buffers
    return (
        msg["header"],
        msg.get("parent_header") or {},
        msg.get("metadata") or {},
        msg.get("content") if msg.get("content") is not None else {},
        msg.get("buffers") or (),
    )


_validate: Callable[[Message | Mapping[str, Any]], Any] | None = None


def _default_validator() -> Callable[[Message | Mapping[str, Any]], Any]:
    # imported lazily (once): messages.py imports the error classes from this module
    global _validate
    if _validate is None:
        from .messages import validate

        _validate = validate
    return _validate


# --------------------------------------------------------------------------- pure functions


def serialize(
    msg: Message | Mapping[str, Any],
    idents: Sequence[bytes] | bytes = (),
    *,
    key: bytes,
) -> list[bytes]:
    """Frames for ``msg`` (a ``Message`` or ``Session.msg`` dict), signed with ``key``.

    Pure and socket-free; does not validate content, so tests can sign
    deliberately bad messages.
    """
    key = _check_key(key)
    header, parent, metadata, content, buffers = _parts(msg)
    signed = [_dumps(header), _dumps(parent), _dumps(metadata), _dumps(content)]
    signed.extend(_as_bytes(b) for b in buffers)
    if isinstance(idents, (bytes, bytearray)):
        idents = [bytes(idents)]
    return [*idents, DELIM, sign(key, signed), *signed]


def deserialize(
    frames: Sequence[Any],
    *,
    key: bytes,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    seen: Callable[[bytes], bool] | None = None,
    validator: Callable[[Message], Any] | None = None,
) -> tuple[list[bytes], Message]:
    """Verify and decode ``frames``; returns ``(idents, Message)`` or raises ``ProtocolError``.

    Pure except for the optional ``seen(signature) -> bool`` hook, which
    ``Session`` uses for replay detection (return True when already seen).
    ``validator`` defaults to ``messages.validate`` (type registry + fields).
    """
    key = _check_key(key)
    try:
        frames = list(frames)
        total = sum(len(f) for f in frames)
    except TypeError:
        raise MalformedMessage("frames are not a sequence of byte strings") from None
    # the cap is checked before any copy or parse, so a huge message costs nothing more
    if total > max_message_bytes:
        raise OversizedMessage(f"{total} bytes > cap {max_message_bytes}")
    frames = [_as_bytes(f) for f in frames]

    try:
        split = frames.index(DELIM)
    except ValueError:
        raise MalformedMessage("missing <IDS|MSG> delimiter") from None
    idents, body = frames[:split], frames[split + 1 :]
    if len(body) < _MIN_FRAMES_AFTER_DELIM:
        raise MalformedMessage(f"{len(body)} frames after delimiter, need {_MIN_FRAMES_AFTER_DELIM}")

    signature, signed = body[0], body[1:]
    if not signature:
        raise UnsignedMessage("empty signature frame")
    if not hmac.compare_digest(sign(key, signed), signature):
        raise BadSignature("signature does not match")
    if seen is not None and seen(signature):
        raise ReplayedMessage("signature already seen")

    header = _loads(signed[0], "header")
    parent = _loads(signed[1], "parent_header")
    metadata = _loads(signed[2], "metadata")
    content = _loads(signed[3], "content")
    for name in HEADER_FIELDS:
        if not isinstance(header.get(name), str) or not header[name]:
            raise MalformedMessage(f"header field {name!r} missing or not a string")
    if header["version"] != PROTOCOL_VERSION:
        raise MalformedMessage(f"protocol version {header['version']!r} != {PROTOCOL_VERSION!r}")

    message = Message(header, parent, metadata, content, signed[4:])
    (validator or _default_validator())(message)
    return idents, message


# --------------------------------------------------------------------------- session


class Session:
    """Signs outgoing and verifies incoming messages for one endpoint.

    ``accept`` optionally restricts incoming messages to the given registry
    directions (see ``messages.Direction``), e.g. a worker accepts only
    requests; this also stops a captured event being reflected back at
    its sender, which never saw that signature arrive.
    """

    # warn for the first few rejections of each reason, then sample, so a
    # flooding peer cannot drown the log
    LOG_FIRST = 10
    LOG_EVERY = 1000

    def __init__(
        self,
        key: bytes,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        replay_history: int = DEFAULT_REPLAY_HISTORY,
        session_id: str | None = None,
        accept: Iterable[str] | None = None,
    ) -> None:
        self._key = _check_key(key)
        if max_message_bytes <= 0:
            raise ValueError("max_message_bytes must be positive")
        if replay_history <= 0:
            raise ValueError("replay_history must be positive")
        self.max_message_bytes = int(max_message_bytes)
        self.replay_history = int(replay_history)
        self.session = session_id or uuid.uuid4().hex
        self.accept = frozenset(accept) if accept is not None else None
        self.rejections: Counter[str] = Counter()
        self._digests: deque[bytes] = deque()
        self._digest_set: set[bytes] = set()
        if self.accept is not None:
            from .messages import Direction

            unknown = self.accept - set(Direction)
            if unknown:
                raise ValueError(f"unknown directions in accept: {sorted(unknown)}")

    def __repr__(self) -> str:
        # never show the key
        return f"<Session {self.session[:8]} rejections={dict(self.rejections)}>"

    @staticmethod
    def new_key() -> bytes:
        """32 random bytes: one HMAC key per run."""
        return secrets.token_bytes(32)

    # ------------------------------------------------------------------ building

    def msg(
        self,
        msg_type: str,
        content: Mapping[str, Any] | None = None,
        parent: Any = None,
        metadata: Mapping[str, Any] | None = None,
        buffers: Sequence[bytes] = (),
    ) -> dict[str, Any]:
        """A message dict (header, msg_id, msg_type, parent_header, metadata, content, buffers)."""
        header = new_header(msg_type, self.session)
        return {
            "header": header,
            "msg_id": header["msg_id"],
            "msg_type": msg_type,
            "parent_header": _parent_header(parent),
            "metadata": dict(metadata or {}),
            "content": dict(content or {}),
            "buffers": [_as_bytes(b) for b in buffers],
        }

    def serialize(self, msg: Message | Mapping[str, Any], idents: Sequence[bytes] | bytes = ()) -> list[bytes]:
        return serialize(msg, idents, key=self._key)

    # ------------------------------------------------------------------ receiving

    def _seen(self, signature: bytes) -> bool:
        if signature in self._digest_set:
            return True
        if len(self._digests) >= self.replay_history:
            self._digest_set.discard(self._digests.popleft())
        self._digests.append(signature)
        self._digest_set.add(signature)
        return False

    def _validator(self, message: Message) -> None:
        spec = _default_validator()(message)
        if self.accept is not None and not (spec.directions & self.accept):
            raise UnknownMessageType(f"{message.msg_type!r} not accepted here", msg_type=message.msg_type)

    def _reject(self, exc: ProtocolError) -> None:
        self.rejections[exc.reason] += 1
        count = self.rejections[exc.reason]
        level = logging.WARNING if count <= self.LOG_FIRST or count % self.LOG_EVERY == 0 else logging.DEBUG
        # reason and detail only: never the key, signature or payload
        log.log(level, "rejected message: reason=%s detail=%s (count=%d)", exc.reason, exc.detail, count)

    def deserialize(self, frames: Sequence[Any]) -> tuple[list[bytes], Message]:
        """Verify, replay-check, decode and validate; counts and logs any rejection."""
        try:
            return deserialize(
                frames,
                key=self._key,
                max_message_bytes=self.max_message_bytes,
                seen=self._seen,
                validator=self._validator,
            )
        except ProtocolError as exc:
            self._reject(exc)
            raise

    # ------------------------------------------------------------------ sockets

    def send(
        self,
        socket: Any,
        msg_or_type: str | Message | Mapping[str, Any],
        content: Mapping[str, Any] | None = None,
        parent: Any = None,
        metadata: Mapping[str, Any] | None = None,
        buffers: Sequence[bytes] = (),
        ident: bytes | Sequence[bytes] | None = None,
        flags: int = 0,
    ) -> dict[str, Any]:
        """Build (unless given a msg), validate, sign and send; returns the msg dict.

        Outgoing messages are validated against the registry so a bug fails
        at the sender (raising, not counting) instead of at the peer.
        """
        if isinstance(msg_or_type, str):
            msg = self.msg(msg_or_type, content, parent, metadata, buffers)
        else:
            msg = msg_or_type.to_dict() if isinstance(msg_or_type, Message) else dict(msg_or_type)
            if buffers:
                msg["buffers"] = [_as_bytes(b) for b in buffers]
        _default_validator()(msg)
        idents: Sequence[bytes] = ()
        if ident is not None:
            idents = [ident] if isinstance(ident, (bytes, bytearray)) else list(ident)
        frames = serialize(msg, idents, key=self._key)
        size = sum(map(len, frames))
        if size > self.max_message_bytes:
            raise OversizedMessage(f"outgoing {size} bytes > cap {self.max_message_bytes}")
        socket.send_multipart(frames, flags=flags, copy=False)
        return msg

    def recv(self, socket: Any, flags: int = 0) -> tuple[list[bytes], Message]:
        """Receive one message; raises ``ProtocolError`` (counted) or ``zmq.Again``."""
        # libzmq delivers a multipart message whole, so it is already in memory;
        # the cap is about never parsing it (copy=True is faster for small frames)
        frames = socket.recv_multipart(flags=flags)
        return self.deserialize(frames)

    def recv_safely(self, socket: Any, flags: int = 0) -> tuple[list[bytes], Message] | None:
        """Like ``recv`` but returns None for a rejected message so loops keep serving."""
        try:
            return self.recv(socket, flags)
        except ProtocolError:
            return None
