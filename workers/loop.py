"""The worker process skeleton shared by the SD and LLM workers: sockets, threads, queue, lifecycle.

Owns everything that is not inference:

* The ROUTER socket (bound on ``ipc://`` for a local worker, ``tcp://`` for a remote one) and the
  I/O thread (the thread that calls ``WorkerLoop.serve``) that alone touches it: it verifies every
  request, answers ``hello_request``/``heartbeat``/``status``/``cancel``/``shutdown`` at once, even
  while a job runs, and queues job requests (FIFO).
* One job thread that runs the blocking native calls of a ``Backend`` one job at a time and sends its
  events back through an ``inproc`` PAIR socket (ZeroMQ sockets are not thread-safe); the I/O thread
  signs them with the requester's ``Session`` and routes them to the requester.
* Keys: a local worker shares one per-run HMAC key (one ``Session``); a remote CURVE worker learns a
  key per client from the ``[b"ddtui-session-key/1", key]`` handshake (one ``Session`` per routing
  identity, bound to the client's CURVE public key).
* Lifecycle: SIGTERM/SIGINT, a ``shutdown`` request, the parent pid exiting or heartbeats stopping
  all lead to the same clean exit (queued jobs answered "cancelled", model freed, sockets closed).

Must never import Textual; nothing here imports a binding.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket as pysocket
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import zmq

from ddtui.catalog.models import CatalogError, resolve_inside, sidecar_path

from ddtui.protocol import (
    REJECTION_REASONS,
    Direction,
    Message,
    OversizedMessage,
    ProtocolError,
    Session,
    configure_curve_server,
    start_authenticator,
)

__all__ = [
    "HANDSHAKE",
    "Backend",
    "WorkerError",
    "JobContext",
    "WorkerLoop",
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_IN_USE",
    "EXIT_ABANDONED",
]

log = logging.getLogger("ddtui.worker")

HANDSHAKE = b"ddtui-session-key/1"
HANDSHAKE_KEY_BYTES = (32, 64)  # accepted key lengths; clients send 32
JOB_TYPES = frozenset({"load_model", "generate", "upscale", "chat"})
FINAL_TYPES = frozenset({"result", "error"})

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_IN_USE = 3
EXIT_ABANDONED = 4  # no heartbeat for --heartbeat-timeout: whoever started it stopped looking after it

_POLL_MS = 100
_MAX_SESSIONS = 64  # remote clients with a live key; the least recently used one is dropped beyond this
_PROGRESS_INTERVAL = 0.1  # seconds between throttled progress events
_HEADROOM = 256 * 1024  # room for the JSON frames next to an event's buffers


class WorkerError(Exception):
    """A job failure the client should see as ``error`` {reason, message}."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def resolve_model_file(model_dir: Path, rel: Any, what: str) -> Path:
    """A file named relative to the model folder, checked to stay inside it and to exist."""
    if not isinstance(rel, str):
        raise WorkerError("bad_params", f"{what} must be a path string relative to the model folder")
    try:
        path = resolve_inside(model_dir, rel)
    except CatalogError as exc:
        raise WorkerError("bad_path", f"{what}: {exc}") from None
    if not path.is_file():
        raise WorkerError("missing_file", f"{what}: no file {rel!r} in the model folder")
    return path


def sidecar_options(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """The `keys` of the sidecar next to a model file (empty without one)."""
    sc = sidecar_path(path)
    if not sc.is_file():
        return {}
    try:
        data = json.loads(sc.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkerError("load_failed", f"sidecar {sc.name}: {exc}") from None
    if not isinstance(data, dict):
        raise WorkerError("load_failed", f"sidecar {sc.name} is not a JSON object")
    return {k: data[k] for k in keys if k in data}


class Backend(Protocol):
    """What a worker kind provides to the loop. ``run`` and ``close`` are called on the job thread only."""

    kind: str
    capabilities: list[str]
    job_types: frozenset[str]

    @property
    def loaded_model(self) -> str | None: ...

    def describe(self) -> dict[str, Any]:
        """Static facts for ``hello``: backend, versions (the device is asked for on every hello)."""
        ...

    def ensure_model(self, ctx: JobContext, rel: Any, options: Any) -> tuple[bool, float]:
        """Load `rel` unless it is already loaded; returns (whether it loaded, seconds)."""
        ...

    def run(self, ctx: JobContext) -> dict[str, Any]:
        """Run one job other than ``load_model``, emitting events through ``ctx``; return the ``result``
        content (without job_id)."""
        ...

    def close(self) -> None: ...


@dataclass(eq=False)
class Job:
    msg_id: str
    job_id: str
    msg_type: str
    content: dict[str, Any]
    buffers: list[bytes]
    ident: list[bytes]
    session: Session
    parent: dict[str, Any]
    cancel: threading.Event = field(default_factory=threading.Event)
    queued_at: float = field(default_factory=time.monotonic)


class JobContext:
    """The job thread's handle on one running job: parameters in, events out (through the inproc socket)."""

    def __init__(self, loop: WorkerLoop, job: Job, pair: zmq.Socket[Any]) -> None:
        self._loop = loop
        self._job = job
        self._pair = pair
        self.started = time.monotonic()
        self._last_progress = 0.0
        self._last_phase = ""

    # ------------------------------------------------------------------ inputs
    @property
    def job_id(self) -> str:
        return self._job.job_id

    @property
    def msg_type(self) -> str:
        return self._job.msg_type

    @property
    def content(self) -> dict[str, Any]:
        return self._job.content

    @property
    def params(self) -> dict[str, Any]:
        params = self._job.content.get("params")
        return params if isinstance(params, dict) else {}

    @property
    def buffers(self) -> list[bytes]:
        return self._job.buffers

    def cancelled(self) -> bool:
        return self._job.cancel.is_set()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # ------------------------------------------------------------------ outputs
    def touch(self) -> None:
        """Mark activity (what ``since_activity`` in heartbeats measures)."""
        self._loop._activity = time.monotonic()

    def set_state(self, state: str) -> None:
        self._loop._state = state

    def emit(
        self,
        msg_type: str,
        content: Mapping[str, Any],
        buffers: Sequence[bytes] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.touch()
        size = sum(len(b) for b in buffers)
        if size > self._loop.max_message_bytes - _HEADROOM:
            # fail the job here rather than have the I/O thread drop an image the client waits for
            raise WorkerError("too_large", f"a {msg_type} of {size} bytes exceeds the message cap "
                                           f"({self._loop.max_message_bytes} bytes; see --max-message-mb)")
        body = {"job_id": self.job_id, **content}
        self._loop._forward(self._pair, self._job.msg_id, msg_type, body, buffers, metadata, final=False)

    def progress(self, step: int, steps: int, phase: str, force: bool = False) -> None:
        """A progress event, throttled: phase changes, the last step and ``force`` always go out."""
        self.touch()
        now = time.monotonic()
        due = now - self._last_progress >= _PROGRESS_INTERVAL
        if not (force or due or phase != self._last_phase or step >= steps):
            return
        self._last_progress = now
        self._last_phase = phase
        self.emit("progress", {"step": int(step), "steps": int(steps), "phase": phase,
                               "elapsed": round(self.elapsed(), 4)})


class WorkerLoop:
    """One worker process: ``serve()`` runs the I/O loop on the calling thread until shutdown."""

    def __init__(
        self,
        backend: Backend,
        endpoint: str,
        *,
        key: bytes | None = None,
        curve_keys: str | os.PathLike[str] | None = None,
        name: str | None = None,
        parent_pid: int | None = None,
        heartbeat_timeout: float = 0.0,
        max_message_bytes: int = 64 * 1024 * 1024,
        shutdown_grace: float = 10.0,
    ) -> None:
        if key is None and curve_keys is None:
            raise ValueError("a worker needs --key-fd (local) or --curve-keys (remote)")
        if endpoint.startswith("tcp://") and curve_keys is None and not _is_loopback(endpoint):
            raise ValueError("a TCP worker reachable from other hosts needs --curve-keys")
        self.backend = backend
        self.endpoint = endpoint
        self.name = name or f"{backend.kind}-{os.getpid()}"
        self.parent_pid = parent_pid
        self.heartbeat_timeout = float(heartbeat_timeout or 0)
        self.max_message_bytes = int(max_message_bytes)
        self.shutdown_grace = float(shutdown_grace)
        self.curve_keys = Path(curve_keys) if curve_keys is not None else None
        self._shared: Session | None = None
        if key is not None:
            self._shared = self._new_session(key)
        # handshake mode: routing identity -> (Session, CURVE user id), least recently used first
        self._sessions: OrderedDict[bytes, tuple[Session, str]] = OrderedDict()
        self._retired: Counter[str] = Counter()  # counts of sessions dropped from _sessions
        self._extra: Counter[str] = Counter()  # rejections no Session saw (no key yet, bad handshake)

        self._cond = threading.Condition()
        self._queue: deque[Job] = deque()
        self._current: Job | None = None
        self._jobs: dict[str, Job] = {}  # msg_id -> job, until its final event is sent
        self._job_ids: dict[str, Job] = {}  # job_id -> job, for cancel
        self._stop_jobs = False
        self._state = "idle"
        self._activity = time.monotonic()
        self._last_client = time.monotonic()
        self._stop_reason: str | None = None
        self._exit_code = EXIT_OK
        self._started = time.monotonic()
        self.bound_endpoint = ""

    # ------------------------------------------------------------------ sessions
    def _new_session(self, key: bytes) -> Session:
        return Session(key, max_message_bytes=self.max_message_bytes, accept=[Direction.REQUEST])

    def rejections(self) -> dict[str, int]:
        total: Counter[str] = Counter({reason: 0 for reason in REJECTION_REASONS})
        if self._shared is not None:
            total.update(self._shared.rejections)
        for session, _ in self._sessions.values():
            total.update(session.rejections)
        total.update(self._retired)
        total.update(self._extra)
        return dict(total)

    def _handshake(self, ident: bytes, key: bytes, user_id: str) -> None:
        if self._shared is not None or self.curve_keys is None or not user_id:
            # a per-client key is only taken from a CURVE-authenticated peer
            self._extra["handshake_refused"] += 1
            log.warning("refused a session-key handshake (not a CURVE-authenticated remote socket)")
            return
        if not HANDSHAKE_KEY_BYTES[0] <= len(key) <= HANDSHAKE_KEY_BYTES[1]:
            self._extra["bad_handshake"] += 1
            log.warning("refused a session-key handshake with a %d-byte key", len(key))
            return
        existing = self._sessions.get(ident)
        if existing is not None and existing[1] != user_id:
            # a different CURVE key may not take over another client's routing identity
            self._extra["handshake_refused"] += 1
            log.warning("refused a handshake for a routing identity owned by another client key")
            return
        if existing is not None:
            self._retired.update(existing[0].rejections)
        self._sessions[ident] = (self._new_session(key), user_id)
        self._sessions.move_to_end(ident)
        while len(self._sessions) > _MAX_SESSIONS:
            _, (old, _) = self._sessions.popitem(last=False)
            self._retired.update(old.rejections)
        log.info("session key accepted from CURVE client %s…", user_id[:8])

    def _session_for(self, ident: bytes, user_id: str) -> Session | None:
        if self._shared is not None:
            return self._shared
        entry = self._sessions.get(ident)
        if entry is None or entry[1] != user_id:
            return None
        self._sessions.move_to_end(ident)
        return entry[0]

    # ------------------------------------------------------------------ job thread side
    def _forward(
        self,
        pair: zmq.Socket[Any],
        msg_id: str,
        msg_type: str,
        content: Mapping[str, Any],
        buffers: Sequence[bytes],
        metadata: Mapping[str, Any] | None,
        final: bool,
    ) -> None:
        frames = [
            msg_id.encode(),
            msg_type.encode(),
            json.dumps(content, allow_nan=False).encode(),
            json.dumps(dict(metadata or {}), allow_nan=False).encode(),
            b"1" if final else b"",
            *buffers,
        ]
        pair.send_multipart(frames, copy=False)

    def _job_thread(self, ctx: zmq.Context[Any]) -> None:
        pair = ctx.socket(zmq.PAIR)
        pair.linger = 1000
        pair.connect("inproc://ddtui-worker-events")
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stop_jobs:
                        self._cond.wait()
                    if not self._queue:
                        break
                    job = self._queue.popleft()
                    self._current = job
                    self._state = "busy"
                    self._activity = time.monotonic()
                try:
                    self._run_job(job, pair)
                finally:
                    with self._cond:
                        self._current = None
                        self._state = "idle"
        finally:
            try:
                self.backend.close()
            except Exception:
                log.exception("freeing the model failed")
            pair.close()

    def _load(self, ctx: JobContext) -> dict[str, Any]:
        content = ctx.content
        loaded, seconds = self.backend.ensure_model(ctx, content.get("model"), content.get("options"))
        return {"status": "loaded", "info": {"signature": self.backend.loaded_model, "seconds": round(seconds, 4),
                                             "model": content.get("model"), "reused": not loaded}}

    def _run_job(self, job: Job, pair: zmq.Socket[Any]) -> None:
        if job.cancel.is_set():
            self._forward(pair, job.msg_id, "result", _cancelled(job), (), None, final=True)
            return
        ctx = JobContext(self, job, pair)
        log.info("job %s (%s) started", job.job_id, job.msg_type)
        msg_type = "result"
        try:
            result = self._load(ctx) if job.msg_type == "load_model" else self.backend.run(ctx)
            content: dict[str, Any] = {"job_id": job.job_id, "status": "done", **result}
            log.info("job %s %s in %.2fs", job.job_id, content.get("status"), ctx.elapsed())
        except WorkerError as exc:
            log.info("job %s failed: %s: %s", job.job_id, exc.reason, exc.message)
            msg_type, content = "error", {"job_id": job.job_id, "reason": exc.reason, "message": exc.message}
        except MemoryError:
            log.exception("job %s ran out of memory", job.job_id)
            msg_type, content = "error", {"job_id": job.job_id, "reason": "out_of_memory", "message": "out of memory"}
        except Exception as exc:  # a binding error must not take the worker down
            log.exception("job %s raised", job.job_id)
            reason = "out_of_memory" if _mentions_memory(exc) else "internal"
            msg_type, content = "error", {"job_id": job.job_id, "reason": reason,
                                          "message": f"{type(exc).__name__}: {exc}"}
        try:
            self._forward(pair, job.msg_id, msg_type, content, (), None, final=True)
        except (TypeError, ValueError) as exc:  # not JSON (NaN, numpy scalars): still end the job
            log.exception("job %s: unserialisable %s", job.job_id, msg_type)
            fallback = {"job_id": job.job_id, "reason": "internal", "message": f"bad {msg_type} content: {exc}"}
            self._forward(pair, job.msg_id, "error", fallback, (), None, final=True)

    # ------------------------------------------------------------------ I/O thread side
    def request_stop(self, reason: str, exit_code: int = EXIT_OK) -> None:
        """Ask the loop to exit cleanly with `exit_code` (signal-handler safe: only sets fields)."""
        if self._stop_reason is None:
            self._stop_reason = reason
            self._exit_code = exit_code

    def _send(
        self,
        router: zmq.Socket[Any],
        session: Session,
        ident: Sequence[bytes],
        msg_type: str,
        content: Mapping[str, Any],
        parent: Any,
        metadata: Mapping[str, Any] | None = None,
        buffers: Sequence[bytes] = (),
    ) -> None:
        try:
            session.send(router, msg_type, content, parent=parent, metadata=metadata, buffers=buffers,
                         ident=list(ident), flags=zmq.NOBLOCK)
        except OversizedMessage as exc:
            log.error("event %s too large: %s", msg_type, exc)
            if msg_type in FINAL_TYPES:  # the client must still learn that the job ended
                job_id = content.get("job_id")
                self._send(router, session, ident, "error",
                           {"job_id": job_id, "reason": "too_large", "message": str(exc)}, parent)
        except ProtocolError as exc:  # our own event failed the registry: a bug, but not a reason to die
            log.exception("not sending an invalid %s event: %s", msg_type, exc)
        except zmq.ZMQError as exc:
            # EHOSTUNREACH: the client went away (ROUTER_MANDATORY); nothing to deliver to
            log.debug("could not deliver %s: %s", msg_type, exc)

    def _hello(self) -> dict[str, Any]:
        from . import devices

        desc = self.backend.describe()
        info = devices.device_info(desc.get("backend", "cpu"))
        return {
            **info,
            "versions": desc.get("versions", {}),
            "loaded_model": self.backend.loaded_model,
            "capabilities": list(self.backend.capabilities),
            "pid": os.getpid(),
            "kind": self.backend.kind,
            "name": self.name,
            "threads": desc.get("threads", 0),
            "state": self._state,
            "queue": len(self._queue),
            "uptime": round(time.monotonic() - self._started, 3),
            "rejections": self.rejections(),
        }

    def _state_content(self) -> dict[str, Any]:
        from . import devices

        current = self._current
        return {
            "state": self._state,
            "job_id": current.job_id if current else None,
            "loaded_model": self.backend.loaded_model,
            "vram_free": devices.vram_free(),
            "queue": [job.job_id for job in self._queue],
            "rejections": self.rejections(),
        }

    def _heartbeat_meta(self) -> dict[str, Any]:
        current = self._current
        return {
            "busy_job": current.job_id if current else None,
            "since_activity": round(time.monotonic() - self._activity, 3) if current else None,
            "queue": len(self._queue),
            "state": self._state,
        }

    def _on_request(self, router: zmq.Socket[Any], session: Session, ident: list[bytes], msg: Message) -> None:
        kind = msg.msg_type
        content = msg.content
        if kind == "heartbeat":
            self._send(router, session, ident, "heartbeat", {"seq": content.get("seq", 0)}, msg,
                       metadata=self._heartbeat_meta())
        elif kind == "hello_request":
            self._send(router, session, ident, "hello", self._hello(), msg)
        elif kind == "status":
            self._send(router, session, ident, "state", self._state_content(), msg)
        elif kind == "cancel":
            self._cancel(router, str(content["job_id"]))
        elif kind == "shutdown":
            self._send(router, session, ident, "ack", {}, msg)
            self.request_stop(f"shutdown requested ({content.get('reason') or 'no reason'})")
        elif kind in JOB_TYPES:
            self._enqueue(router, session, ident, msg)
        else:  # pragma: no cover - Session(accept=REQUEST) filters everything else
            log.warning("ignoring request type %s", kind)

    def _enqueue(self, router: zmq.Socket[Any], session: Session, ident: list[bytes], msg: Message) -> None:
        job_id = msg.content.get("job_id")
        job_id = job_id if isinstance(job_id, str) and job_id else msg.msg_id

        def refuse(reason: str, message: str) -> None:
            self._send(router, session, ident, "error", {"job_id": job_id, "reason": reason, "message": message}, msg)

        if msg.msg_type not in self.backend.job_types:
            return refuse("unsupported", f"a {self.backend.kind} worker does not run {msg.msg_type!r}")
        if self._stop_reason is not None:
            return refuse("shutting_down", "the worker is shutting down")
        if job_id in self._job_ids:
            return refuse("duplicate_job", f"job {job_id!r} is already queued or running")
        job = Job(msg.msg_id, job_id, msg.msg_type, msg.content, list(msg.buffers), ident, session, msg.header)
        with self._cond:
            self._jobs[job.msg_id] = job
            self._job_ids[job_id] = job
            self._queue.append(job)
            self._cond.notify()

    def _cancel(self, router: zmq.Socket[Any], job_id: str) -> None:
        with self._cond:
            job = self._job_ids.get(job_id)
            if job is None:
                return
            job.cancel.set()
            try:
                self._queue.remove(job)
            except ValueError:
                return  # running: the backend stops at its next check
        log.info("dropped queued job %s", job_id)
        self._finish(job)
        self._send(router, job.session, job.ident, "result", _cancelled(job), job.parent)

    def _finish(self, job: Job) -> None:
        self._jobs.pop(job.msg_id, None)
        if self._job_ids.get(job.job_id) is job:
            del self._job_ids[job.job_id]

    def _drain_router(self, router: zmq.Socket[Any]) -> None:
        for _ in range(256):  # bounded so a flood cannot starve the event path
            try:
                frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) < 2:
                self._extra["malformed"] += 1
                continue
            ident = frames[0].bytes
            user_id = _user_id(frames[1])
            if len(frames) == 3 and frames[1].bytes == HANDSHAKE:
                self._handshake(ident, frames[2].bytes, user_id)
                continue
            session = self._session_for(ident, user_id)
            if session is None:
                self._extra["no_session"] += 1
                if self._extra["no_session"] <= 10:
                    log.warning("rejected message: reason=no_session (no key from this client yet)")
                continue
            try:
                idents, msg = session.deserialize(frames)
            except ProtocolError:
                continue  # counted and logged by the Session
            self._last_client = time.monotonic()
            self._on_request(router, session, idents, msg)

    def _drain_pair(self, router: zmq.Socket[Any], pair: zmq.Socket[Any]) -> None:
        while True:
            try:
                frames = pair.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            msg_id, msg_type = frames[0].decode(), frames[1].decode()
            content, metadata = json.loads(frames[2]), json.loads(frames[3])
            final, buffers = frames[4] == b"1", frames[5:]
            job = self._jobs.get(msg_id)
            if job is None:
                continue  # already answered (cancelled while queued)
            if final:
                with self._cond:
                    self._finish(job)
            self._send(router, job.session, job.ident, msg_type, content, job.parent, metadata, buffers)

    def _check_liveness(self, now: float) -> None:
        if self.heartbeat_timeout > 0 and now - self._last_client > self.heartbeat_timeout:
            self.request_stop(f"no heartbeat for {self.heartbeat_timeout:g}s", EXIT_ABANDONED)
        if self.parent_pid and not _pid_alive(self.parent_pid):
            self.request_stop(f"parent process {self.parent_pid} exited")

    def _begin_stop(self, router: zmq.Socket[Any]) -> None:
        log.info("stopping: %s", self._stop_reason)
        with self._cond:
            dropped = list(self._queue)
            self._queue.clear()
            self._stop_jobs = True
            if self._current is not None:
                self._current.cancel.set()
            self._cond.notify_all()
        for job in dropped:
            job.cancel.set()
            self._finish(job)
            self._send(router, job.session, job.ident, "result", _cancelled(job), job.parent)

    def serve(self) -> int:
        """Bind, run until asked to stop, clean up; returns the process exit code."""
        ctx: zmq.Context[Any] = zmq.Context()
        router = ctx.socket(zmq.ROUTER)
        router.linger = 500
        router.router_mandatory = 1  # unroutable replies raise instead of vanishing silently
        router.sndhwm = 0  # never drop an image because previews filled the pipe
        router.maxmsgsize = self.max_message_bytes  # libzmq refuses bigger frames before we see them
        pair = ctx.socket(zmq.PAIR)
        pair.linger = 0
        pair.bind("inproc://ddtui-worker-events")
        auth = None
        pidfd = None
        job_thread: threading.Thread | None = None
        try:
            if self.curve_keys is not None:
                auth = start_authenticator(ctx, self.curve_keys / "allowed_clients")
                configure_curve_server(router, self.curve_keys / "server.key_secret")
            try:
                self._bind(router)
            except _EndpointInUse as exc:
                log.error("%s", exc)
                return EXIT_IN_USE
            job_thread = threading.Thread(target=self._job_thread, args=(ctx,), name="ddtui-job", daemon=True)
            job_thread.start()
            poller = zmq.Poller()
            poller.register(router, zmq.POLLIN)
            poller.register(pair, zmq.POLLIN)
            pidfd = _pidfd(self.parent_pid)
            if pidfd is not None:
                poller.register(pidfd, zmq.POLLIN)
            elif self.parent_pid and not _pid_alive(self.parent_pid):
                self.request_stop(f"parent process {self.parent_pid} is already gone")
            log.info("worker %s (%s) ready on %s pid=%d", self.name, self.backend.kind, self.bound_endpoint,
                     os.getpid())
            next_check = 0.0
            deadline: float | None = None
            while True:
                try:
                    ready = dict(poller.poll(_POLL_MS))
                except zmq.ZMQError as exc:
                    if exc.errno == errno.EINTR:  # a signal; the handler already set the flag
                        continue
                    raise
                if pidfd is not None and pidfd in ready:
                    self.request_stop(f"parent process {self.parent_pid} exited")
                    poller.unregister(pidfd)
                    os.close(pidfd)
                    pidfd = None
                if pair in ready:
                    self._drain_pair(router, pair)
                if router in ready:
                    self._drain_router(router)
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + 0.5
                    if pidfd is None:
                        self._check_liveness(now)
                    elif self.heartbeat_timeout > 0 and now - self._last_client > self.heartbeat_timeout:
                        self.request_stop(f"no heartbeat for {self.heartbeat_timeout:g}s", EXIT_ABANDONED)
                if self._stop_reason is not None and deadline is None:
                    self._begin_stop(router)
                    deadline = now + self.shutdown_grace
                if deadline is not None:
                    if not job_thread.is_alive():
                        self._drain_pair(router, pair)
                        break
                    if now > deadline:
                        log.error("job still running %.0fs after the stop request; exiting without freeing it",
                                  self.shutdown_grace)
                        self._drain_pair(router, pair)
                        router.close(linger=200)
                        pair.close()
                        logging.shutdown()
                        # the native call cannot be interrupted; a normal exit would run finalisers under it
                        os._exit(self._exit_code)
            log.info("worker %s stopped (%s)", self.name, self._stop_reason)
            return self._exit_code
        finally:
            if pidfd is not None:
                os.close(pidfd)
            with self._cond:
                self._stop_jobs = True
                self._queue.clear()
                self._cond.notify_all()
            if job_thread is not None and job_thread.is_alive():
                job_thread.join(self.shutdown_grace)
            self._unbind(router)
            router.close()
            pair.close()
            if auth is not None:
                auth.stop()
            ctx.term()

    def _bind(self, router: zmq.Socket[Any]) -> None:
        if self.endpoint.startswith("ipc://"):
            path = self.endpoint[len("ipc://"):]
            if path and not path.startswith("@") and _unix_socket_live(path):
                # libzmq unlinks the path on bind, which would silently steal a live worker's socket
                raise _EndpointInUse(f"{self.endpoint} is in use by a running process")
            old = os.umask(0o077)  # the socket file is connectable by this user only
            try:
                router.bind(self.endpoint)
            finally:
                os.umask(old)
        else:
            router.bind(self.endpoint)
        self.bound_endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)


    def _unbind(self, router: zmq.Socket[Any]) -> None:
        if not self.bound_endpoint:
            return
        try:
            router.unbind(self.bound_endpoint)
        except zmq.ZMQError:
            pass
        if self.bound_endpoint.startswith("ipc://"):
            path = self.bound_endpoint[len("ipc://"):]
            # libzmq leaves the socket file behind; a stale one only costs the next worker a probe
            if path and not path.startswith("@"):
                try:
                    os.unlink(path)
                except OSError:
                    pass


class _EndpointInUse(RuntimeError):
    pass


def _cancelled(job: Job) -> dict[str, Any]:
    return {"job_id": job.job_id, "status": "cancelled", "info": {"images": 0, "elapsed": 0.0}}


def _mentions_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("out of memory", "memory", "alloc", "oom"))


def _user_id(frame: Any) -> str:
    """The CURVE client key ZAP attached to a frame ("" on sockets without ZAP)."""
    try:
        value = frame.get("User-Id")
    except (zmq.ZMQError, AttributeError, TypeError):
        return ""
    return value or ""


def _is_loopback(endpoint: str) -> bool:
    host = endpoint[len("tcp://"):].rpartition(":")[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def _unix_socket_live(path: str) -> bool:
    if not os.path.exists(path):
        return False
    probe = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _pidfd(pid: int | None) -> int | None:
    """A pollable fd that becomes readable when ``pid`` exits (Linux >= 5.3), immune to pid reuse."""
    if not pid or not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None  # already gone; the liveness check notices
    except OSError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    # an exited child nobody reaped yet is a zombie: gone for our purposes
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rpartition(b")")[2].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def install_signal_handlers(loop: WorkerLoop) -> None:
    """SIGTERM/SIGINT ask the loop to stop (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: Any) -> None:
        loop.request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
