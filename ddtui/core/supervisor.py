"""The supervisor: starts local workers, connects to remote ones, watches them, restarts what dies.

Each worker is a `WorkerSlot`. A heartbeat task pings every slot; a slot whose process exits, or that stops
answering for `heartbeat_timeout`, is restarted and its model reloaded, and the job it was running is told
(the dispatcher decides that job's fate). A worker that crashes more than `max_restarts` times within
`restart_window` seconds is left stopped with the reason shown, instead of being restarted forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..protocol import Message
from .worker_client import LocalWorkerProcess, WorkerClient, spawn_local_worker

log = logging.getLogger("ddtui.supervisor")

SD_JOB_TYPES = ("generate", "upscale")
LLM_JOB_TYPES = ("tag", "chat")


@dataclass
class WorkerSlot:
    name: str
    kind: str  # "sd" or "llm"
    local: bool
    endpoint: str = ""
    curve: tuple[bytes, bytes, bytes] | None = None  # client secret, client public, server public
    client: WorkerClient | None = None
    process: LocalWorkerProcess | None = None
    state: str = "stopped"  # starting, idle, busy, unloading, restarting, stopped, failed
    job_id: int | None = None
    loaded: dict[str, Any] | None = None  # the last load_model request, replayed after a restart
    hello: dict[str, Any] = field(default_factory=dict)
    restarts: deque = field(default_factory=deque)
    restart_count: int = 0
    last_error: str = ""
    last_rtt_ms: float = 0.0
    last_seen: float = 0.0
    last_used: float = 0.0  # monotonic time its last job ended (idle LLMs are unloaded after a while)

    @property
    def job_types(self) -> tuple[str, ...]:
        return SD_JOB_TYPES if self.kind == "sd" else LLM_JOB_TYPES

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "local": self.local, "endpoint": self.endpoint,
            "state": self.state, "job_id": self.job_id, "restarts": self.restart_count,
            "last_error": self.last_error, "rtt_ms": round(self.last_rtt_ms, 2),
            "pid": self.process.process.pid if self.process and self.process.process else self.hello.get("pid"),
            "device": self.hello.get("device", ""), "backend": self.hello.get("backend", ""),
            "vram_total": self.hello.get("vram_total", 0), "vram_free": self.hello.get("vram_free", 0),
            "loaded_model": (self.loaded or {}).get("model", ""),
        }


EventHandler = Callable[[WorkerSlot, Message], None]
LossHandler = Callable[[WorkerSlot, str], Awaitable[None]]


class Supervisor:
    def __init__(self, run_dir: Path, model_dir: Path, on_event: EventHandler, on_lost: LossHandler, *,
                 threads: dict[str, int] | None = None, heartbeat_interval: float = 1.0,
                 heartbeat_timeout: float = 10.0, max_restarts: int = 3, restart_window: float = 300.0,
                 connect_timeout: float = 20.0, max_message_bytes: int = 64 << 20) -> None:
        self.run_dir = run_dir
        self.model_dir = model_dir
        self.on_event = on_event
        self.on_lost = on_lost
        self.threads = threads or {}
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.connect_timeout = connect_timeout
        self.max_message_bytes = max_message_bytes
        self.slots: list[WorkerSlot] = []
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        self._locks: dict[str, asyncio.Lock] = {}

    def add_local(self, name: str, kind: str) -> WorkerSlot:
        slot = WorkerSlot(name=name, kind=kind, local=True)
        self.slots.append(slot)
        return slot

    def add_remote(self, name: str, kind: str, endpoint: str, curve: tuple[bytes, bytes, bytes]) -> WorkerSlot:
        slot = WorkerSlot(name=name, kind=kind, local=False, endpoint=endpoint, curve=curve)
        self.slots.append(slot)
        return slot

    async def start(self) -> None:
        await asyncio.gather(*(self._start_slot(s) for s in self.slots), return_exceptions=True)
        self._tasks.append(asyncio.create_task(self._watch(), name="supervisor-watch"))

    async def stop(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(self._stop_slot(s, graceful=True) for s in self.slots), return_exceptions=True)

    # -- lifecycle of one slot

    async def _start_slot(self, slot: WorkerSlot) -> bool:
        lock = self._locks.setdefault(slot.name, asyncio.Lock())
        async with lock:
            if slot.state in ("idle", "busy") and slot.client is not None:
                return True  # another caller (the watcher or a restart) already started it
            slot.state = "starting"
            try:
                if slot.local:
                    slot.process = await asyncio.to_thread(
                        spawn_local_worker, slot.kind, self.run_dir, self.model_dir,
                        self.threads.get(slot.kind, 1), slot.name,
                        ["--heartbeat-timeout", str(max(30.0, self.heartbeat_timeout * 3))],
                        log_file=self.run_dir.parent / "logs" / f"{slot.name}.log",
                    )
                    slot.endpoint = slot.process.endpoint
                    client = WorkerClient(slot.endpoint, key=slot.process.key, name=slot.name,
                                          max_message_bytes=self.max_message_bytes)
                else:
                    client = WorkerClient(slot.endpoint, curve=slot.curve, name=slot.name,
                                          max_message_bytes=self.max_message_bytes)
                client.on_event = lambda msg, s=slot: self._dispatch_event(s, msg)
                await client.connect()
                slot.client = client
                slot.hello = dict((await client.hello(timeout=self.connect_timeout)).content)
                slot.last_seen = time.monotonic()
                if slot.loaded:
                    await client.request("load_model", slot.loaded)  # restore the model it had
                slot.state = "idle"
                slot.last_error = slot.last_error if slot.restart_count else ""
                log.info("worker %s ready (%s, %s)", slot.name, slot.hello.get("backend"), slot.hello.get("device"))
                return True
            except Exception as exc:  # noqa: BLE001 - any start failure becomes the slot's shown reason
                slot.last_error = f"could not start: {exc}"
                slot.state = "failed" if not slot.local else "restarting"
                log.warning("worker %s failed to start: %s", slot.name, exc)
                await self._close_client(slot)
                if slot.process:
                    slot.process.kill()
                return False

    async def _close_client(self, slot: WorkerSlot) -> None:
        if slot.client is not None:
            slot.client.close()
            slot.client = None

    async def _stop_slot(self, slot: WorkerSlot, graceful: bool) -> None:
        if slot.client is not None and graceful:
            try:
                await slot.client.request("shutdown", {"reason": "ddtui service stopping"})
            except Exception:  # noqa: BLE001 - it may already be gone
                pass
        await self._close_client(slot)
        if slot.process is not None:
            await asyncio.to_thread(slot.process.terminate, 5.0)
            slot.process = None
        slot.state = "stopped"

    async def restart(self, slot: WorkerSlot, reason: str, crash: bool = True) -> None:
        """End the worker and start it again: after a crash or a hang (`crash`, counted towards the limit),
        or on purpose (a cancel that must stop now, unloading an idle model), which is not counted."""
        if self._closing:
            return
        job_id = slot.job_id
        log.warning("restarting worker %s: %s", slot.name, reason)
        if crash:
            slot.last_error = reason
        await self._close_client(slot)
        if slot.process is not None:
            slot.process.kill()
            await asyncio.to_thread(slot.process.process.wait)
            slot.process = None
        if job_id is not None:
            await self.on_lost(slot, reason)
        slot.job_id = None
        now = time.monotonic()
        if crash:
            slot.restarts.append(now)
        while slot.restarts and now - slot.restarts[0] > self.restart_window:
            slot.restarts.popleft()
        slot.restart_count += 1
        if len(slot.restarts) > self.max_restarts:
            slot.state = "failed"
            slot.last_error = (f"stopped after {len(slot.restarts)} crashes in {self.restart_window:.0f} s; "
                               f"last: {reason}")
            log.error("worker %s left stopped: %s", slot.name, slot.last_error)
            return
        if slot.local or slot.curve is not None:
            slot.state = "restarting"
            await self._start_slot(slot)

    def _dispatch_event(self, slot: WorkerSlot, msg: Message) -> None:
        slot.last_seen = time.monotonic()
        if msg.msg_type == "hello":
            slot.hello = dict(msg.content)
        self.on_event(slot, msg)

    async def _watch(self) -> None:
        """Heartbeats and process exits, for every slot, forever."""
        while not self._closing:
            await asyncio.sleep(self.heartbeat_interval)
            for slot in list(self.slots):
                if slot.state in ("starting", "stopped", "failed"):
                    continue
                if slot.state == "restarting":
                    if slot.local and len(slot.restarts) <= self.max_restarts:
                        await self._start_slot(slot)
                    continue
                if slot.process is not None and slot.process.process.poll() is not None:
                    code = slot.process.process.returncode
                    await self.restart(slot, f"worker process exited (code {code})")
                    continue
                if slot.client is None:
                    continue
                try:
                    slot.last_rtt_ms = await slot.client.heartbeat(timeout=self.heartbeat_timeout) * 1000
                    slot.last_seen = time.monotonic()
                except Exception:  # noqa: BLE001 - no answer in time
                    if time.monotonic() - slot.last_seen > self.heartbeat_timeout:
                        await self.restart(slot, f"worker stopped answering for {self.heartbeat_timeout:.0f} s")

    def idle_slots(self, job_type: str) -> list[WorkerSlot]:
        return [s for s in self.slots if s.state == "idle" and job_type in s.job_types and s.client is not None]

    def slot_running(self, job_id: int) -> WorkerSlot | None:
        return next((s for s in self.slots if s.job_id == job_id), None)
