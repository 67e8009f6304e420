"""The supervisor: starts local workers, connects to remote ones, watches them, restarts what dies.

Each worker is a `WorkerSlot` with one watch task. A local worker's death is learnt from the process itself:
the kernel reports the exit (a pidfd the event loop watches) with its status ("killed by SIGKILL", "exited
with code 3"), and whatever the worker sent before it died is dispatched before its job is told it was lost.
Heartbeats catch the rest: a hung worker, or a remote one, that stops answering for `heartbeat_timeout`.
Either way the worker is restarted with its model, and the job it was running is told (the dispatcher decides
that job's fate). A worker that crashes, or fails to start, more than `max_restarts` times within
`restart_window` seconds is left stopped with the reason shown, instead of being restarted forever.
Deliberate restarts (`restart(..., crash=False)`: cancel now, unloading an idle model) are not crashes.

One restart at a time per slot: ending a worker and starting one hold the slot's lock, and every path that
ends a worker names the process or client it saw, so a second notice of the same death is a no-op.
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
from .worker_client import LocalWorkerProcess, WorkerClient, exit_reason, spawn_local_worker

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
    exit: asyncio.Task[int] | None = None  # ends with the local process's exit status
    state: str = "stopped"  # starting, idle, busy, unloading, restarting, stopped, failed
    job_id: int | None = None
    loaded: dict[str, Any] | None = None  # the last load_model request, replayed after a restart
    hello: dict[str, Any] = field(default_factory=dict)
    restarts: deque[float] = field(default_factory=deque)  # crash times within the window
    restart_count: int = 0  # every restart, deliberate ones included
    crash_count: int = 0  # crashes, hangs and failed starts only
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
            "crashes": self.crash_count, "last_error": self.last_error, "rtt_ms": round(self.last_rtt_ms, 2),
            # a local worker's pid only while it lives (an old hello's pid may belong to someone else by now)
            "pid": self.process.pid if self.process else (None if self.local else self.hello.get("pid")),
            "device": self.hello.get("device", ""), "backend": self.hello.get("backend", ""),
            "vram_total": self.hello.get("vram_total", 0), "vram_free": self.hello.get("vram_free", 0),
            "loaded_model": (self.loaded or {}).get("model", ""),
        }


EventHandler = Callable[[WorkerSlot, Message], None]
LossHandler = Callable[[WorkerSlot, str], Awaitable[None]]


class _WorkerExited(Exception):
    """The worker's process ended while we waited for it."""


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
        self._tasks: list[asyncio.Task[None]] = []
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
        for slot in self.slots:
            self._tasks.append(asyncio.create_task(self._watch(slot), name=f"supervisor-watch-{slot.name}"))

    async def stop(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(self._stop_slot(s, graceful=True) for s in self.slots), return_exceptions=True)

    def _lock(self, slot: WorkerSlot) -> asyncio.Lock:
        return self._locks.setdefault(slot.name, asyncio.Lock())

    # -- lifecycle of one slot

    async def _start_slot(self, slot: WorkerSlot) -> bool:
        async with self._lock(slot):
            if slot.state in ("idle", "busy", "unloading") and slot.client is not None:
                return True  # another caller (the watcher or a restart) already started it
            if self._closing or slot.state == "failed":
                return False
            slot.state = "starting"
            try:
                if slot.local:
                    slot.process = await asyncio.to_thread(
                        spawn_local_worker, slot.kind, self.run_dir, self.model_dir,
                        self.threads.get(slot.kind, 1), slot.name,
                        ["--heartbeat-timeout", str(max(30.0, self.heartbeat_timeout * 3))],
                        log_file=self.run_dir.parent / "logs" / f"{slot.name}.log",
                    )
                    slot.exit = asyncio.ensure_future(slot.process.wait_exit())
                    slot.endpoint = slot.process.endpoint
                    client = WorkerClient(slot.endpoint, key=slot.process.key, name=slot.name,
                                          max_message_bytes=self.max_message_bytes, watch_peer=True)
                else:
                    client = WorkerClient(slot.endpoint, curve=slot.curve, name=slot.name,
                                          max_message_bytes=self.max_message_bytes)
                client.on_event = lambda msg, s=slot: self._dispatch_event(s, msg)
                slot.client = client
                await client.connect()
                hello = await self._unless_exit(slot, client.hello(timeout=self.connect_timeout))
                slot.hello = dict(hello.content)
                slot.last_seen = time.monotonic()
                if slot.loaded:
                    await client.request("load_model", slot.loaded)  # restore the model it had
                slot.state = "idle"
                if not slot.crash_count:
                    slot.last_error = ""
                log.info("worker %s ready (%s, %s)", slot.name, slot.hello.get("backend"), slot.hello.get("device"))
                return True
            except Exception as exc:  # noqa: BLE001 - any start failure becomes the slot's shown reason
                reason = f"could not start: {exc}"
                log.warning("worker %s failed to start: %s", slot.name, exc)
                await self._end(slot)
                if self._closing:
                    slot.state = "stopped"
                elif slot.local:
                    self._count_crash(slot, reason)  # a worker that cannot start is not retried forever
                else:
                    slot.last_error = reason
                    slot.state = "failed"
                return False

    async def _unless_exit(self, slot: WorkerSlot, waiting: Awaitable[Any]) -> Any:
        """Await `waiting`, unless the slot's process ends first: then fail at once, saying how it ended."""
        exit_task = slot.exit
        if exit_task is None:
            return await waiting
        task = asyncio.ensure_future(waiting)
        try:
            await asyncio.wait({task, exit_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
        if task.done() and not task.cancelled():
            return task.result()  # an answer that came with the exit still counts
        raise _WorkerExited(f"worker process {exit_reason(exit_task.result())}")

    async def _end(self, slot: WorkerSlot) -> None:
        """Close the slot's client and end its process (SIGKILL), waiting until it is gone."""
        client, process, exit_task = slot.client, slot.process, slot.exit
        slot.client, slot.process, slot.exit = None, None, None
        if client is not None:
            client.close()
        if process is not None:
            if process.alive:
                process.process.kill()
            if exit_task is not None:
                await asyncio.shield(exit_task)  # a caller cancelled meanwhile still leaves it reaped
            else:
                await asyncio.to_thread(process.process.wait)

    async def _stop_slot(self, slot: WorkerSlot, graceful: bool) -> None:
        if slot.client is not None and graceful:
            try:
                await slot.client.request("shutdown", {"reason": "ddtui service stopping"})
            except Exception:  # noqa: BLE001 - it may already be gone
                pass
        client, process, exit_task = slot.client, slot.process, slot.exit
        slot.client, slot.process, slot.exit = None, None, None
        if client is not None:
            client.close()
        if process is not None:
            await asyncio.to_thread(process.terminate, 5.0)
        if exit_task is not None:
            exit_task.cancel()
            await asyncio.gather(exit_task, return_exceptions=True)
        slot.state = "stopped"

    async def restart(self, slot: WorkerSlot, reason: str, crash: bool = True) -> None:
        """End the worker and start it again: after a crash or a hang (`crash`, counted towards the limit),
        or on purpose (a cancel that must stop now, unloading an idle model), which is not counted.
        A slot already being restarted (or given up on) is left to that."""
        if self._closing or slot.state in ("starting", "restarting", "failed", "stopped"):
            return
        if await self._lose(slot, reason, crash, client=slot.client):
            await self._start_slot(slot)

    async def _lose(self, slot: WorkerSlot, reason: str, crash: bool, *, client: WorkerClient | None = None,
                    process: LocalWorkerProcess | None = None) -> bool:
        """End the worker that `client`/`process` belong to, tell its job, and mark the slot for a start (or
        stopped, after too many crashes). False, doing nothing, when that worker was already replaced."""
        async with self._lock(slot):
            if self._closing:
                return False
            if (client is not None and slot.client is not client) or (
                    process is not None and slot.process is not process):
                return False
            log.warning("restarting worker %s: %s", slot.name, reason)
            slot.state = "restarting"  # nothing is dispatched to it from here on
            if crash:
                slot.last_error = reason
            await self._end(slot)
            if slot.job_id is not None:
                try:
                    await self.on_lost(slot, reason)
                except Exception:  # noqa: BLE001 - the job's fate is the dispatcher's; the worker still restarts
                    log.exception("telling job %s that worker %s was lost failed", slot.job_id, slot.name)
            slot.job_id = None
            slot.restart_count += 1
            if crash:
                self._count_crash(slot, reason)
            return slot.state == "restarting"

    def _count_crash(self, slot: WorkerSlot, reason: str) -> None:
        """Note a crash; past `max_restarts` in `restart_window` the slot is left stopped, else it restarts."""
        now = time.monotonic()
        slot.crash_count += 1
        slot.last_error = reason
        slot.restarts.append(now)
        while slot.restarts and now - slot.restarts[0] > self.restart_window:
            slot.restarts.popleft()
        if len(slot.restarts) > self.max_restarts:
            slot.state = "failed"
            slot.last_error = (f"stopped after {len(slot.restarts)} crashes in {self.restart_window:.0f} s; "
                               f"last: {reason}")
            log.error("worker %s left stopped: %s", slot.name, slot.last_error)
        else:
            slot.state = "restarting"

    def _dispatch_event(self, slot: WorkerSlot, msg: Message) -> None:
        slot.last_seen = time.monotonic()
        if msg.msg_type == "hello":
            slot.hello = dict(msg.content)
        self.on_event(slot, msg)

    async def _watch(self, slot: WorkerSlot) -> None:
        """One slot, forever: start it when it needs starting, restart it the moment its process ends, and
        heartbeat it (a hung or remote worker is noticed when it stops answering)."""
        while not self._closing:
            try:
                await self._watch_once(slot)
            except Exception:  # noqa: BLE001 - the watch must outlive a failing loss handler
                log.exception("watching worker %s failed", slot.name)
                await asyncio.sleep(self.heartbeat_interval)

    async def _watch_once(self, slot: WorkerSlot) -> None:
        if slot.state == "restarting":
            if not await self._start_slot(slot):
                await asyncio.sleep(self.heartbeat_interval)  # a pause between failed starts
            return
        exit_task = slot.exit
        if exit_task is not None:
            await asyncio.wait({exit_task}, timeout=self.heartbeat_interval)
        else:
            await asyncio.sleep(self.heartbeat_interval)
        if exit_task is not None and exit_task.done() and slot.exit is exit_task:
            await self._exited(slot, exit_task)
        elif slot.state in ("idle", "busy") and slot.client is not None:
            await self._heartbeat(slot)

    async def _exited(self, slot: WorkerSlot, exit_task: asyncio.Task[int]) -> None:
        process, client = slot.process, slot.client
        if process is None:
            return
        reason = f"worker process {exit_reason(exit_task.result())}"
        if client is not None:
            await client.settle()  # what it sent before it died reaches its job before the news of its death
        await self._lose(slot, reason, crash=True, process=process)

    async def _heartbeat(self, slot: WorkerSlot) -> None:
        client = slot.client
        assert client is not None
        try:
            rtt = await self._unless_exit(slot, client.heartbeat(timeout=self.heartbeat_timeout))
        except _WorkerExited:
            return  # the next turn of the watch handles the exit
        except Exception:  # noqa: BLE001 - no answer in time, or the client was closed by a restart
            if slot.client is client and time.monotonic() - slot.last_seen > self.heartbeat_timeout:
                await self._lose(slot, f"worker stopped answering for {self.heartbeat_timeout:.0f} s", crash=True,
                                 client=client)
            return
        slot.last_rtt_ms = rtt * 1000
        slot.last_seen = time.monotonic()

    def idle_slots(self, job_type: str) -> list[WorkerSlot]:
        return [s for s in self.slots if s.state == "idle" and job_type in s.job_types and s.client is not None]

    def slot_running(self, job_id: int) -> WorkerSlot | None:
        return next((s for s in self.slots if s.job_id == job_id), None)
