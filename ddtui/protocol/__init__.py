"""ddtui wire protocol: signed ZeroMQ multipart messages, the message registry and keys.

Public API is re-exported here; ``wire`` owns framing/signing/verification,
``messages`` owns the message type registry, ``keys`` owns HMAC key handoff
and CURVE certificates. Must never import Textual.
"""

from .keys import (
    KeyFileError,
    KeyPaths,
    configure_curve_client,
    configure_curve_server,
    init_keys,
    key_to_pipe,
    load_public,
    load_secret,
    read_key_file,
    read_key_from_fd,
    start_authenticator,
    write_key_file,
)
from .messages import REGISTRY, Direction, MessageSpec, register, types_for, validate
from .wire import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_REPLAY_HISTORY,
    DELIM,
    MIN_KEY_BYTES,
    PROTOCOL_VERSION,
    REJECTION_REASONS,
    BadSignature,
    MalformedMessage,
    Message,
    OversizedMessage,
    ProtocolError,
    ReplayedMessage,
    Session,
    UnknownMessageType,
    UnsignedMessage,
    deserialize,
    new_header,
    serialize,
    sign,
)

__all__ = [
    # wire
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
    # messages
    "Direction",
    "MessageSpec",
    "REGISTRY",
    "register",
    "validate",
    "types_for",
    # keys
    "KeyFileError",
    "KeyPaths",
    "write_key_file",
    "read_key_file",
    "key_to_pipe",
    "read_key_from_fd",
    "init_keys",
    "load_public",
    "load_secret",
    "configure_curve_server",
    "configure_curve_client",
    "start_authenticator",
]
