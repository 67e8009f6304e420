"""Key material for the wire: transient HMAC keys and CURVE certificates.

This module owns two things:

1. Handing the per-run HMAC key to a *local* worker without it ever being on
   a command line or in the environment (both are readable via /proc):
   either a private file created with ``O_CREAT|O_EXCL`` mode 0600 that the
   worker reads and unlinks (``write_key_file``/``read_key_file``), or an
   inherited pipe (``key_to_pipe``/``read_key_from_fd`` with
   ``subprocess.Popen(pass_fds=...)``).
2. CURVE for *remote* workers over TCP: certificate files in the zmq/czmq
   format (so ``zmq.auth`` can read them), socket configuration, and a ZAP
   allow-list authenticator fed from ``allowed_clients/``. CURVE encrypts and
   authenticates the peer; the HMAC signature still applies on top.

No secret is ever logged.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

__all__ = [
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

log = logging.getLogger("ddtui.protocol")

_KEY_FILE_PREFIX = ".ddtui-key-"
_MAX_KEY_BYTES = 4096  # an HMAC key file is 32 bytes; anything huge is not ours
_Z85_KEY_LEN = 40


class KeyFileError(PermissionError):
    """A key file (or certificate secret) is not safely private to this user."""


def _check_private(st: os.stat_result, path: Path) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{path} is not a regular file")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise KeyFileError(f"{path} is not owned by the current user")
    if st.st_mode & 0o077:
        raise KeyFileError(f"{path} is accessible by group/others (mode {stat.S_IMODE(st.st_mode):04o})")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_all(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise KeyFileError(f"key data longer than {limit} bytes")
        chunks.append(chunk)


_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


# --------------------------------------------------------------------------- transient HMAC key


def write_key_file(directory: str | os.PathLike[str], key: bytes) -> Path:
    """Write ``key`` to a new randomly named 0600 file in ``directory``; returns its path.

    ``O_EXCL|O_NOFOLLOW`` means a pre-planted file or symlink makes this fail
    instead of writing through it.
    """
    if not key:
        raise ValueError("refusing to write an empty key")
    directory = Path(directory)
    path = directory / f"{_KEY_FILE_PREFIX}{secrets.token_hex(16)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600)
    try:
        # umask can only clear bits, but be explicit in case of odd filesystems
        os.fchmod(fd, 0o600)
        _write_all(fd, bytes(key))
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return path


def read_key_file(path: str | os.PathLike[str], delete: bool = True) -> bytes:
    """Read a key written by ``write_key_file``; by default unlink it after reading.

    Refuses (``KeyFileError``) a symlink, a file owned by someone else, or one
    readable/writable by group or others; such a file is left in place.
    """
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
    try:
        _check_private(os.fstat(fd), path)
        key = _read_all(fd, _MAX_KEY_BYTES)
    finally:
        os.close(fd)
    if delete:
        path.unlink(missing_ok=True)
    if not key:
        raise KeyFileError(f"{path} is empty")
    return key


def key_to_pipe(key: bytes) -> int:
    """Put ``key`` in a new pipe and return the read end for ``Popen(pass_fds=[fd])``.

    The write end is closed at once, so the reader sees EOF after the key.
    The parent should ``os.close`` the returned fd once the child started.
    """
    if not key:
        raise ValueError("refusing to send an empty key")
    if len(key) > _MAX_KEY_BYTES:
        raise ValueError("key too long for a pipe handoff")
    read_fd, write_fd = os.pipe()
    try:
        # well under PIPE_BUF/pipe capacity, so this never blocks without a reader
        _write_all(write_fd, bytes(key))
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return read_fd


def read_key_from_fd(fd: int) -> bytes:
    """Read the key from an inherited pipe fd until EOF, then close the fd."""
    try:
        key = _read_all(fd, _MAX_KEY_BYTES)
    finally:
        os.close(fd)
    if not key:
        raise KeyFileError(f"no key on fd {fd}")
    return key


# --------------------------------------------------------------------------- CURVE certificates


@dataclass(frozen=True, slots=True)
class KeyPaths:
    keys_dir: Path
    server_public: Path
    server_secret: Path
    client_public: Path
    client_secret: Path
    allowed_clients: Path


_BANNER = """#   ****  Generated on {date} by ddtui  ****
#   ZeroMQ CURVE {kind} Certificate
#   {advice}

metadata
curve
    public-key = "{public}"
"""


def _write_cert(path: Path, public: bytes, secret: bytes | None, force: bool) -> None:
    kind = "**Secret**" if secret else "Public"
    advice = "DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions." if secret else (
        "Exchange securely; the peer adds it to allowed_clients/ or pins it."
    )
    text = _BANNER.format(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        kind=kind,
        advice=advice,
        public=public.decode("ascii"),
    )
    if secret:
        text += f'    secret-key = "{secret.decode("ascii")}"\n'
    flags = os.O_WRONLY | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC
    # force truncates in place; otherwise never clobber an existing key
    flags |= os.O_TRUNC if force else os.O_EXCL
    fd = os.open(path, flags, 0o600 if secret else 0o644)
    try:
        os.fchmod(fd, 0o600 if secret else 0o644)
        _write_all(fd, text.encode("ascii"))
    finally:
        os.close(fd)


def init_keys(keys_dir: str | os.PathLike[str], *, force: bool = False) -> KeyPaths:
    """Create server/client CURVE certificates and ``allowed_clients/`` in ``keys_dir``.

    Existing keys are kept (and their paths returned) unless ``force``.
    ``keys_dir`` is made 0700; secrets are 0600; ``client.key`` is copied
    into ``allowed_clients/`` so the local client is accepted by default.
    """
    keys_dir = Path(keys_dir)
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(keys_dir, 0o700)
    allowed = keys_dir / "allowed_clients"
    allowed.mkdir(exist_ok=True, mode=0o700)
    paths = KeyPaths(
        keys_dir=keys_dir,
        server_public=keys_dir / "server.key",
        server_secret=keys_dir / "server.key_secret",
        client_public=keys_dir / "client.key",
        client_secret=keys_dir / "client.key_secret",
        allowed_clients=allowed,
    )
    for public_path, secret_path in (
        (paths.server_public, paths.server_secret),
        (paths.client_public, paths.client_secret),
    ):
        if not force and public_path.exists() and secret_path.exists():
            continue
        if not force and (public_path.exists() or secret_path.exists()):
            raise FileExistsError(f"half a key pair in {keys_dir}; pass force=True to regenerate")
        public, secret = zmq.curve_keypair()
        _write_cert(secret_path, public, secret, force)
        _write_cert(public_path, public, None, force)
    allowed_client = allowed / "client.key"
    if force or not allowed_client.exists():
        _write_cert(allowed_client, load_public(paths.client_public), None, force=True)
    return paths


def load_public(path: str | os.PathLike[str]) -> bytes:
    """The z85 public key from a certificate (public or secret file)."""
    public, _ = zmq.auth.load_certificate(path)
    if len(public) != _Z85_KEY_LEN:
        raise ValueError(f"{path}: not a z85 CURVE public key")
    return public


def load_secret(path: str | os.PathLike[str]) -> bytes:
    """The z85 secret key from a ``*.key_secret`` file, which must be private (0600, ours)."""
    _check_private(os.stat(path, follow_symlinks=False), Path(path))
    _, secret = zmq.auth.load_certificate(path)
    if not secret or len(secret) != _Z85_KEY_LEN:
        raise ValueError(f"{path}: no z85 CURVE secret key")
    return secret


def _key(value: str | os.PathLike[str] | bytes, secret: bool) -> bytes:
    # 40-byte z85 strings are keys; anything else is a certificate path
    if isinstance(value, bytes):
        if len(value) == _Z85_KEY_LEN:
            return value
        value = os.fsdecode(value)
    return load_secret(value) if secret else load_public(value)


def configure_curve_server(
    socket: zmq.Socket[Any],
    secret_path: str | os.PathLike[str] | bytes,
    public_path: str | os.PathLike[str] | bytes | None = None,
) -> None:
    """Make ``socket`` a CURVE server (call before bind). Public key defaults to the secret file's."""
    socket.curve_secretkey = _key(secret_path, secret=True)
    socket.curve_publickey = _key(public_path if public_path is not None else secret_path, secret=False)
    socket.curve_server = True


def configure_curve_client(
    socket: zmq.Socket[Any],
    client_secret: str | os.PathLike[str] | bytes,
    client_public: str | os.PathLike[str] | bytes,
    server_public: str | os.PathLike[str] | bytes,
) -> None:
    """Make ``socket`` a CURVE client pinning ``server_public`` (call before connect)."""
    socket.curve_secretkey = _key(client_secret, secret=True)
    socket.curve_publickey = _key(client_public, secret=False)
    socket.curve_serverkey = _key(server_public, secret=False)


def start_authenticator(
    context: zmq.Context[Any],
    allowed_clients: str | os.PathLike[str],
    *,
    allow_ips: tuple[str, ...] = (),
    domain: str = "*",
) -> ThreadAuthenticator:
    """Start a ZAP authenticator admitting only CURVE clients whose public key is in ``allowed_clients/*.key``.

    Unknown client keys are refused during the handshake; the caller
    ``stop()``s the returned authenticator. After adding or removing a file,
    call ``auth.configure_curve(domain, allowed_clients)`` again to reload.
    """
    allowed = Path(allowed_clients)
    if not allowed.is_dir():
        # zmq.auth only logs a missing folder, which would silently deny everyone
        raise FileNotFoundError(f"allowed clients folder {allowed} does not exist")
    auth = ThreadAuthenticator(context, log=logging.getLogger("ddtui.protocol.auth"))
    auth.start()
    try:
        if allow_ips:
            auth.allow(*allow_ips)
        auth.configure_curve(domain=domain, location=str(allowed))
    except BaseException:
        auth.stop()
        raise
    return auth
