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
from typing import Any, Callable

import zmq
import zmq.asyncio

from ..atomic import atomic_file
from ..config import Config, ConfigError, Home
from ..protocol import Message, Session
from .library import DatabaseBusy, EditError
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
        self._handlers = self._handler_table()

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
            except (ParamError, QueueError, EditError, ConfigError, DatabaseBusy, ValueError, KeyError) as exc:
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
        key = b"/".join(idents)
        if key in self.subscribers:
            self.subscribers[key].seen = time.monotonic()
        handler = self._handlers.get(t)
        if handler is None:
            raise ValueError(f"unsupported request {t!r}")
        result = handler(c, dict(msg.header), idents)
        if asyncio.iscoroutine(result):
            result = await result
        return dict(result)

    # One handler per request type: (content, header of the request, client identity) -> result.
    # Every write passes the request's header on, so the events it causes carry it as their parent.

    def _submit(self, c: dict[str, Any], parent: dict[str, Any], _idents: list[bytes]) -> dict[str, Any]:
        core = self.core
        kind, params = c["kind"], c["params"]
        prio = int(c.get("priority", 0))
        if kind == "generate":
            job = core.submit_generate(params, priority=prio, group=c.get("group", ""), parent=parent)
        elif kind == "upscale":
            job = core.submit_upscale(int(params["generation_id"]), params.get("upscaler", ""), priority=prio,
                                      parent=parent)
        elif kind == "tag":
            job = core.submit_tag(int(params["generation_id"]), priority=prio, parent=parent)
        elif kind == "chat":
            job = core.submit_chat(params.get("messages", []), params.get("params"), priority=prio,
                                   group=c.get("group", ""), parent=parent)
        elif kind == "rerun":
            job = core.submit_rerun(int(params["generation_id"]), priority=prio, parent=parent)
        elif kind == "explore":
            anchor = params.get("anchor") or {}
            source = params.get("generation_id")
            if source and not anchor:
                anchor = core.rerun_request_for(int(source))
            group = core.start_exploration(anchor, list(params.get("locked", [])),
                                           int(source) if source else None, parent=parent)
            return {"group": group}
        else:
            raise ValueError(f"unknown job kind {kind!r}")
        return {"job": job.to_dict()}

    async def _cancel_job(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        return {"job": (await self.core.cancel(int(c["job_id"]), now=bool(c.get("now")), parent=parent)).to_dict()}

    async def _cancel_group(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        return {"jobs": [j.to_dict() for j in await self.core.cancel_group(c["group"], parent=parent)]}

    def _retry_job(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        return {"job": self.core.retry(int(c["job_id"]), parent=parent).to_dict()}

    def _set_priority(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        return {"job": self.core.set_priority(int(c["job_id"]), int(c["priority"]), parent=parent).to_dict()}

    def _pause(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        self.core.set_paused(True, parent=parent)
        return {"paused": True}

    def _resume(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        self.core.set_paused(False, parent=parent)
        return {"paused": False}

    async def _rate(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        return {"ids": await self.core.rate(c.get("ids"), c.get("rating"), parent=parent)}

    async def _favorite(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        return {"ids": await self.core.set_favorite(c.get("ids"), c.get("favorite"), parent=parent)}

    async def _tags(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        tags = await self.core.edit_tags(c.get("id"), c.get("add") or [], c.get("remove") or [], c.get("set"),
                                   parent=parent)
        return {"tags": [t.to_dict() for t in tags]}

    async def _delete(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        deleted, removed, problems = await self.core.delete_items(c.get("ids"), bool(c.get("files")), parent=parent)
        return {"deleted": deleted, "files_removed": removed, "problems": problems}

    async def _import(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        report = await self.core.import_paths(c["paths"], c.get("tag"), parent=parent)
        return {"results": [r.to_dict() for r in report.results],
                "counts": {s: report.count(s) for s in ("imported", "duplicate", "skipped")}}

    async def _style_save(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        if c.get("by_name"):
            sid = await self.core.save_style_by_name(str(c.get("name") or ""), str(c.get("prompt") or ""),
                                               str(c.get("negative_prompt") or ""), parent=parent)
        else:
            sid = await self.core.save_style(c.get("id"), str(c.get("name") or ""), str(c.get("prompt") or ""),
                                       str(c.get("negative_prompt") or ""), parent=parent)
        return {"id": sid}

    async def _style_delete(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        await self.core.delete_style(c.get("id"), parent=parent)
        return {"deleted": c.get("id")}

    async def _snippet_save(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        return {"id": await self.core.save_snippet(c.get("id"), str(c.get("label") or ""), str(c.get("content") or ""),
                                             str(c.get("category") or "general"), parent=parent)}

    async def _snippet_delete(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        await self.core.delete_snippet(c.get("id"), parent=parent)
        return {"deleted": c.get("id")}

    async def _snippet_use(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        return {"use_count": await self.core.use_snippet(c.get("id"), parent=parent)}

    async def _preset_save(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        return {"id": await self.core.save_preset(str(c.get("kind")), c.get("preset") or {}, parent=parent)}

    async def _preset_delete(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        await self.core.delete_preset(str(c.get("kind")), c.get("id"), parent=parent)
        return {"deleted": c.get("id")}

    async def _setting_set(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        await self.core.set_setting(c["key"], c.get("value"), parent=parent)
        return {"key": c.get("key")}

    async def _config_save(self, c: dict[str, Any], parent: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        data = c.get("config")
        if data is None:
            changes = c.get("changes")
            if not isinstance(changes, dict):
                raise ValueError("config.save: give the whole configuration (config) or some keys (changes)")
            data = self.core.cfg.with_changes(changes)
        return {"changed": await self.core.save_config(data, parent=parent)}

    def _subscribe(self, c: dict[str, Any], _p: dict[str, Any], idents: list[bytes]) -> dict[str, Any]:
        self.subscribers[b"/".join(idents)] = Subscriber(idents, c.get("job_id") or "", c.get("group") or "",
                                                         c.get("topics"))
        return {"subscribed": True}

    def _unsubscribe(self, c: dict[str, Any], _p: dict[str, Any], idents: list[bytes]) -> dict[str, Any]:
        self.subscribers.pop(b"/".join(idents), None)
        return {"subscribed": False}

    async def _core_status(self, c: dict[str, Any], _p: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        status = self.core.status()
        await self._worker_rejections(status["workers"])
        return {**status, "pid": os.getpid(), "rejections": dict(self.session.rejections),
                "subscribers": len(self.subscribers)}

    def _core_ping(self, c: dict[str, Any], _p: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        return {"pong": True}

    def _stop_service(self, c: dict[str, Any], _p: dict[str, Any], _i: list[bytes]) -> dict[str, Any]:
        asyncio.get_running_loop().call_later(0.05, self.stopped.set)
        return {"stopping": True}

    def _handler_table(self) -> dict[str, Callable[..., Any]]:
        return {
            "submit": self._submit, "cancel_job": self._cancel_job, "cancel_group": self._cancel_group,
            "retry_job": self._retry_job, "set_priority": self._set_priority, "pause_queue": self._pause,
            "resume_queue": self._resume,
            "history.rate": self._rate, "history.favorite": self._favorite, "history.tags": self._tags,
            "history.delete": self._delete, "history.import": self._import,
            "style.save": self._style_save, "style.delete": self._style_delete,
            "snippet.save": self._snippet_save, "snippet.delete": self._snippet_delete,
            "snippet.use": self._snippet_use,
            "preset.save": self._preset_save, "preset.delete": self._preset_delete,
            "setting.set": self._setting_set, "config.save": self._config_save,
            "subscribe": self._subscribe, "unsubscribe": self._unsubscribe, "core_status": self._core_status,
            "core_ping": self._core_ping, "stop_service": self._stop_service,
        }

    async def _worker_rejections(self, workers: list[dict[str, Any]]) -> None:
        """Each worker's own count of messages it refused (asked fresh; a busy worker answers at once)."""
        for info, slot in zip(workers, self.core.supervisor.slots):
            if slot.client is None or slot.state not in ("idle", "busy"):
                continue
            try:
                info["rejections"] = dict((await slot.client.status(timeout=2.0)).content.get("rejections", {}))
            except Exception:  # noqa: BLE001 - a worker that does not answer in time shows no counters
                pass

    def _broadcast(self, event: dict[str, Any], buffers: list[bytes], parent: dict[str, Any]) -> None:
        if self.sock is None:
            return
        now = time.monotonic()
        for key, sub in list(self.subscribers.items()):
            if now - sub.seen > SUBSCRIBER_TTL_S:
                del self.subscribers[key]  # a client that stopped pinging has gone away
                continue
            if sub.wants(event):
                try:
                    self.session.send(self.sock, "job_event", event, parent=parent or None, buffers=buffers,
                                      ident=sub.ident, flags=zmq.NOBLOCK)
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
