"""The client side of the core service's API, shared by the CLI and the terminal interface.

`CoreClient` talks to `ddtui serve` over its local socket with the signed protocol (the key comes from the
owner-only `run/client.key`). Replies are matched to requests by the parent header; job events arrive on an
asyncio queue. `ensure_service` starts a detached service for the home when none answers.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from typing import Any, AsyncIterator

import zmq
import zmq.asyncio

from ..config import Home
from ..protocol import Session
from ..protocol.wire import ProtocolError
from .server import endpoint, key_path, pid_path, socket_path

PING_EVERY_S = 20.0


class ServiceUnavailable(Exception):
    """No service answers for this home (and it could not be started)."""


class RequestFailed(Exception):
    """The service refused a request; `reason` names the kind of error."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class CoreClient:
    def __init__(self, home: Home) -> None:
        self.home = home
        try:
            key = key_path(home).read_bytes()
        except OSError as exc:
            raise ServiceUnavailable(f"no ddtui service is running for {home.root}") from exc
        self.session = Session(key, accept=["core->client"])
        self.ctx = zmq.asyncio.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint(home))
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[tuple[dict[str, Any], list[bytes]]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "CoreClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            frames = await self.sock.recv_multipart(copy=False)
            try:
                _, msg = self.session.deserialize(frames)
            except ProtocolError:
                continue
            if msg.msg_type == "reply":
                fut = self._pending.pop(msg.parent_id or "", None)
                if fut is not None and not fut.done():
                    fut.set_result(msg.content)
            elif msg.msg_type == "job_event":
                # `parent`: the msg_id of the request that caused the event ("" for none).
                event = {**msg.content, "parent": msg.parent_id or ""}
                self.events.put_nowait((event, [bytes(b) for b in msg.buffers]))

    @staticmethod
    def new_request_id() -> str:
        """An id for a request not sent yet: events it causes carry it as their parent, even the first."""
        return uuid.uuid4().hex

    async def request(self, msg_type: str, content: dict[str, Any] | None = None, timeout: float = 15.0,
                      request_id: str = "") -> dict[str, Any]:
        self._ensure_reader()
        msg = self.session.msg(msg_type, content or {})
        if request_id:
            msg["header"]["msg_id"] = msg["msg_id"] = request_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg["msg_id"]] = fut
        self.session.send(self.sock, msg)
        try:
            reply = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._pending.pop(msg["msg_id"], None)
            raise ServiceUnavailable(f"the ddtui service did not answer {msg_type} within {timeout:.0f} s") from None
        if not reply.get("ok"):
            raise RequestFailed(reply.get("error", "request failed"), reply.get("reason", ""))
        return dict(reply.get("result") or {})

    async def subscribe(self, job_id: int | str | None = None, group: str = "") -> None:
        content: dict[str, Any] = {}
        if job_id is not None:
            content["job_id"] = str(job_id)
        if group:
            content["group"] = group
        await self.request("subscribe", content)
        if self._pinger is None:
            self._pinger = asyncio.create_task(self._ping())

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(PING_EVERY_S)
            try:
                await self.request("core_ping", timeout=10)
            except (ServiceUnavailable, RequestFailed):
                pass

    async def iter_events(self) -> AsyncIterator[tuple[dict[str, Any], list[bytes]]]:
        while True:
            yield await self.events.get()

    async def submit(self, kind: str, params: dict[str, Any], priority: int = 0, group: str = "",
                     request_id: str = "") -> dict[str, Any]:
        """Queue a job; returns it as a dict (an exploration returns {"group": ...})."""
        content: dict[str, Any] = {"kind": kind, "params": params, "priority": priority}
        if group:
            content["group"] = group
        result = await self.request("submit", content, request_id=request_id)
        return dict(result.get("job", result))

    async def close(self) -> None:
        for task in (self._reader, self._pinger):
            if task is not None:
                task.cancel()
        for task in (self._reader, self._pinger):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        self.sock.close(0)


def service_pid(home: Home) -> int | None:
    """The pid in run/service.pid if that process is alive."""
    try:
        pid = int(pid_path(home).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


async def ping(home: Home, timeout: float = 3.0) -> bool:
    if not (socket_path(home).exists() and key_path(home).exists()):
        return False
    try:
        client = CoreClient(home)
    except ServiceUnavailable:
        return False
    try:
        await client.request("core_ping", timeout=timeout)
        return True
    except (ServiceUnavailable, RequestFailed):
        return False
    finally:
        await client.close()


def start_detached(home: Home) -> subprocess.Popen[bytes]:
    """Start `ddtui serve` for this home in its own session, logging to logs/service.out."""
    home.ensure()
    out = open(home.logs / "service.out", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "ddtui", "--home", str(home.root), "serve"],
        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        close_fds=True,
    )


async def ensure_service(home: Home, timeout: float = 60.0) -> bool:
    """Make sure a service answers for `home`; returns True if this call started it."""
    if await ping(home):
        return False
    if service_pid(home) is not None:
        # Running but not answering yet (still starting its workers): wait for it.
        started = False
    else:
        proc = start_detached(home)
        started = True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await ping(home, timeout=2.0):
            return started
        if started and proc.poll() is not None:
            raise ServiceUnavailable(
                f"the ddtui service exited at start (code {proc.returncode}); see {home.logs / 'service.out'}")
        await asyncio.sleep(0.2)
    raise ServiceUnavailable(f"the ddtui service did not come up within {timeout:.0f} s; "
                             f"see {home.logs / 'service.log'}")
