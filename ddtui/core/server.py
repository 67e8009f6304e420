"""`ddtui serve`: one core service per home, and its client API on a local socket.

The service binds `ipc://<home>/run/core.sock` (a ROUTER) in the owner-only `run/` folder and writes the
per-run HMAC key to `run/client.key` (mode 0600), so only the home's owner can talk to it. Requests get one
`reply`; subscribers get every `job_event` (progress, previews with their PNG buffer, images, results) until
they unsubscribe or stop pinging. `run/service.pid` names the process, for `ddtui serve --stop`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from ..atomic import atomic_file
from ..config import Config, Home
from ..protocol import Message, Session
from .params import ParamError
from .queue import QueueError
from .service import Core

log = logging.getLogger("ddtui.server")

SUBSCRIBER_TTL_S = 60.0


def socket_path(home: Home) -> Path:
    return home.run / "core.sock"


def endpoint(home: Home) -> str:
    return f"ipc://{socket_path(home)}"


def key_path(home: Home) -> Path:
    return home.run / "client.key"


def pid_path(home: Home) -> Path:
    return home.run / "service.pid"


def write_private(path: Path, data: bytes) -> None:
    """Owner-only file, written whole."""
    with atomic_file(path, mode=0o600) as fh:
        fh.write(data)


class Subscriber:
    def __init__(self, ident: list[bytes], job_id: str = "", group: str = "", topics: list[str] | None = None):
        self.ident = ident
        self.job_id = job_id
        self.group = group
        self.topics = set(topics or [])
        self.seen = time.monotonic()

    def wants(self, event: dict[str, Any]) -> bool:
        if self.job_id and event.get("job_id") != self.job_id:
            return False
        if self.topics and event.get("event") not in self.topics:
            return False
        return True


class ServiceServer:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.home = core.home
        self.key = Session.new_key()
        self.session = Session(self.key, accept=["client->core"],
                               max_message_bytes=core.cfg["workers"]["max_message_mb"] << 20)
        self.ctx = zmq.asyncio.Context.instance()
        self.sock: zmq.asyncio.Socket | None = None
        self.subscribers: dict[bytes, Subscriber] = {}
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        """Serve until stopped by `stop_service`, SIGTERM or SIGINT."""
        self.home.run.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home.run, 0o700)
        sock_file = socket_path(self.home)
        if sock_file.exists():
            sock_file.unlink()  # a stale socket from a crashed run; liveness was checked by the caller
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 10000)
        self.sock.bind(endpoint(self.home))
        os.chmod(sock_file, 0o600)
        write_private(key_path(self.home), self.key)
        write_private(pid_path(self.home), str(os.getpid()).encode())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stopped.set)
            except (NotImplementedError, RuntimeError):
                pass
        self.core.listeners.append(self._broadcast)
        receiver = asyncio.create_task(self._receive())  # answer pings while the workers start
        await self.core.start()
        log.info("ddtui service ready at %s", endpoint(self.home))
        await self.stopped.wait()
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
        await self.core.stop()
        self.sock.close(0)
        for path in (pid_path(self.home), key_path(self.home), sock_file):
            path.unlink(missing_ok=True)
        log.info("ddtui service stopped")

    async def _receive(self) -> None:
        assert self.sock is not None
        while True:
            frames = await self.sock.recv_multipart(copy=False)
            try:
                idents, msg = self.session.deserialize(frames)
            except Exception:  # noqa: BLE001 - counted and logged by the session; keep serving
                continue
            try:
                result = await self._handle(idents, msg)
                self._reply(idents, msg, True, result)
            except (ParamError, QueueError, ValueError, KeyError) as exc:
                self._reply(idents, msg, False, {}, str(exc), type(exc).__name__)
            except Exception as exc:  # noqa: BLE001 - report, never crash the service on one request
                log.exception("request %s failed", msg.msg_type)
                self._reply(idents, msg, False, {}, f"{type(exc).__name__}: {exc}", "internal")

    def _reply(self, idents: list[bytes], parent: Message, ok: bool, result: dict[str, Any], error: str = "",
               reason: str = "") -> None:
        content: dict[str, Any] = {"ok": ok, "result": result}
        if not ok:
            content.update(error=error, reason=reason)
        self.session.send(self.sock, "reply", content, parent=parent, ident=idents)

    async def _handle(self, idents: list[bytes], msg: Message) -> dict[str, Any]:
        c = msg.content
        t = msg.msg_type
        core = self.core
        key = b"/".join(idents)
        if key in self.subscribers:
            self.subscribers[key].seen = time.monotonic()
        if t == "submit":
            kind, params = c["kind"], c["params"]
            prio = int(c.get("priority", 0))
            if kind == "generate":
                job = core.submit_generate(params, priority=prio, group=c.get("group", ""))
            elif kind == "upscale":
                job = core.submit_upscale(int(params["generation_id"]), params.get("upscaler", ""), priority=prio)
            elif kind == "tag":
                job = core.submit_tag(int(params["generation_id"]), priority=prio)
            elif kind == "chat":
                job = core.submit_chat(params.get("messages", []), params.get("params"), priority=prio,
                                       group=c.get("group", ""))
            elif kind == "rerun":
                gid = int(params["generation_id"])
                job = core.submit_generate(dict(core.rerun_request_for(gid), parent_id=gid), priority=prio)
            elif kind == "explore":
                anchor = params.get("anchor") or {}
                parent = params.get("generation_id")
                if parent and not anchor:
                    anchor = core.rerun_request_for(int(parent))
                group = core.start_exploration(anchor, list(params.get("locked", [])), int(parent) if parent else None)
                return {"group": group}
            else:
                raise ValueError(f"unknown job kind {kind!r}")
            return {"job": job.to_dict()}
        if t == "cancel_job":
            return {"job": (await core.cancel(int(c["job_id"]), now=bool(c.get("now")))).to_dict()}
        if t == "cancel_group":
            return {"jobs": [j.to_dict() for j in await core.cancel_group(c["group"])]}
        if t == "retry_job":
            return {"job": core.retry(int(c["job_id"])).to_dict()}
        if t == "set_priority":
            job = core.queue.set_priority(int(c["job_id"]), int(c["priority"]))
            core.emit(job.id, "priority", {"priority": job.priority})
            return {"job": job.to_dict()}
        if t in ("pause_queue", "resume_queue"):
            core.set_paused(t == "pause_queue")
            return {"paused": t == "pause_queue"}
        if t == "subscribe":
            self.subscribers[key] = Subscriber(idents, c.get("job_id") or "", c.get("group") or "", c.get("topics"))
            return {"subscribed": True}
        if t == "unsubscribe":
            self.subscribers.pop(key, None)
            return {"subscribed": False}
        if t == "core_status":
            status = core.status()
            await self._worker_rejections(status["workers"])
            return {**status, "pid": os.getpid(), "rejections": dict(self.session.rejections),
                    "subscribers": len(self.subscribers)}
        if t == "core_ping":
            return {"pong": True}
        if t == "stop_service":
            asyncio.get_running_loop().call_later(0.05, self.stopped.set)
            return {"stopping": True}
        raise ValueError(f"unsupported request {t!r}")

    async def _worker_rejections(self, workers: list[dict[str, Any]]) -> None:
        """Each worker's own count of messages it refused (asked fresh; a busy worker answers at once)."""
        for info, slot in zip(workers, self.core.supervisor.slots):
            if slot.client is None or slot.state not in ("idle", "busy"):
                continue
            try:
                info["rejections"] = dict((await slot.client.status(timeout=2.0)).content.get("rejections", {}))
            except Exception:  # noqa: BLE001 - a worker that does not answer in time shows no counters
                pass

    def _broadcast(self, event: dict[str, Any], buffers: list[bytes]) -> None:
        if self.sock is None:
            return
        now = time.monotonic()
        for key, sub in list(self.subscribers.items()):
            if now - sub.seen > SUBSCRIBER_TTL_S:
                del self.subscribers[key]  # a client that stopped pinging has gone away
                continue
            if sub.wants(event):
                try:
                    self.session.send(self.sock, "job_event", event, buffers=buffers, ident=sub.ident,
                                      flags=zmq.NOBLOCK)
                except zmq.Again:
                    log.warning("dropping an event for a slow subscriber")


def serve(home: Home, cfg: Config) -> int:
    """Run the service in this process until it is stopped."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(home.logs / "service.log"), logging.StreamHandler()],
    )
    core = Core(home, cfg)
    server = ServiceServer(core)
    asyncio.run(server.run())
    return 0
