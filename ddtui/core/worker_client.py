"""The core's side of a worker connection: an asyncio client and the launcher for local worker processes.

Owns ``WorkerClient`` (one zmq.asyncio DEALER per worker: signs requests, verifies events, routes
replies to whoever waits for them, measures heartbeat round trips) and ``spawn_local_worker`` (makes
the per-run HMAC key, hands it to ``python -m workers`` through an inherited pipe, never the command
line or environment, and binds the worker to ``--parent-pid`` of this process). A ``LocalWorkerProcess``
tells the event loop the moment its process ends (``wait_exit``, a pidfd the loop watches), and a client
started with ``watch_peer`` can ``settle``: hand on everything the dead worker sent before it died. The
supervisor builds restarts, health checks and job dispatch on these. Must never import Textual.

Event routing in ``WorkerClient``: a reply awaited by ``call``/``hello``/``heartbeat``/``status`` goes
to that waiter only; events of a job started with ``start_job`` go to its ``JobEvents``; everything
else goes to ``on_event`` when set, otherwise to the ``events()`` queue.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from ddtui.protocol import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Direction,
    Message,
    ProtocolError,
    Session,
    configure_curve_client,
    key_to_pipe,
)

__all__ = [
    "HANDSHAKE",
    "FINAL_EVENTS",
    "WorkerClient",
    "JobEvents",
    "LocalWorkerProcess",
    "exit_reason",
    "spawn_local_worker",
]

log = logging.getLogger("ddtui.core.worker_client")

HANDSHAKE = b"ddtui-session-key/1"  # must match workers.loop.HANDSHAKE (core never imports workers)
FINAL_EVENTS = frozenset({"result", "error"})
_IPC_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes with the NUL
_DRAIN_BATCH = 64  # messages handled per wake-up before other tasks get a turn
# what the worker's own exit codes mean (must match workers.loop.EXIT_*)
_EXIT_MEANINGS = {2: "bad arguments", 3: "its socket is in use by another process",
                  4: "no heartbeat reached it in time"}

CurveKeys = tuple[Any, Any, Any]  # (client_secret, client_public, server_public): z85 bytes or cert paths


class JobEvents:
    """The events of one job request, ending with its ``result`` or ``error``."""

    def __init__(self, client: WorkerClient, msg_id: str, job_id: str) -> None:
        self.client = client
        self.msg_id = msg_id
        self.job_id = job_id
        self.queue: asyncio.Queue[Message | None] = asyncio.Queue()  # None: the client was closed
        self.final: Message | None = None

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while self.final is None or not self.queue.empty():
            msg = await self.queue.get()
            if msg is None:
                raise ConnectionError(f"worker client closed before job {self.job_id} ended")
            if msg.msg_type in FINAL_EVENTS:
                self.final = msg
            yield msg
            if self.final is not None and self.queue.empty():
                return

    async def collect(self, timeout: float | None = None) -> list[Message]:
        """Every event up to and including the final one (raises TimeoutError)."""
        out: list[Message] = []

        async def run() -> None:
            async for msg in self:
                out.append(msg)

        await asyncio.wait_for(run(), timeout)
        return out

    async def cancel(self) -> str:
        return await self.client.cancel(self.job_id)


class WorkerClient:
    """An asyncio connection to one worker (local ipc with a shared key, or remote CURVE with a handshake)."""

    def __init__(
        self,
        endpoint: str,
        key: bytes | None = None,
        curve: CurveKeys | None = None,
        name: str = "ddtui",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        on_event: Callable[[Message], Any] | None = None,
        context: zmq.asyncio.Context | None = None,
        watch_peer: bool = False,
    ) -> None:
        if key is None and curve is None:
            raise ValueError("a worker client needs the worker's key (local) or CURVE keys (remote)")
        self.endpoint = endpoint
        self.name = name
        self.curve = curve
        # with CURVE and no shared key, a fresh key per connection goes through the handshake
        self._handshake = key is None
        self.key = key if key is not None else Session.new_key()
        self.session = Session(self.key, max_message_bytes=max_message_bytes, accept=[Direction.EVENT])
        self.on_event = on_event
        self._ctx = context or zmq.asyncio.Context.instance()
        self._sock: zmq.asyncio.Socket | None = None
        self._raw: zmq.Socket[Any] | None = None  # a synchronous view of _sock, for draining without waiting
        self._watch_peer = watch_peer
        self._monitor: zmq.asyncio.Socket | None = None
        self._raw_monitor: zmq.Socket[Any] | None = None
        self._peer_links = 0  # connections to the worker the monitor reported open and not yet closed
        self._reader: asyncio.Task[None] | None = None
        self._waiters: dict[str, asyncio.Future[Message]] = {}
        self._streams: dict[str, JobEvents] = {}
        self._handler_tasks: set[asyncio.Future[Any]] = set()  # on_event coroutines still running
        self._events: asyncio.Queue[Message | None] = asyncio.Queue()  # None: the client was closed
        self._seq = itertools.count(1)
        self.last_seen: float | None = None  # monotonic time of the last verified event
        self.last_heartbeat: Message | None = None
        self.closed = False

    # ------------------------------------------------------------------ lifecycle
    async def connect(self) -> None:
        if self._sock is not None:
            return
        sock = self._ctx.socket(zmq.DEALER)
        sock.linger = 0
        # a stable identity per client: a reconnect keeps the worker-side session of the handshake
        sock.routing_id = b"c" + secrets.token_bytes(15)
        sock.maxmsgsize = self.session.max_message_bytes
        if self.curve is not None:
            configure_curve_client(sock, *self.curve)
        if self._watch_peer:
            # connection opened/closed events; the monitor is attached before connecting so none is missed
            address = f"inproc://ddtui-peer-{secrets.token_hex(8)}"
            sock.monitor(address, zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
            monitor = self._ctx.socket(zmq.PAIR)
            monitor.linger = 0
            monitor.connect(address)
            self._monitor = monitor
            self._raw_monitor = zmq.Socket.shadow(monitor.underlying)
        sock.connect(self.endpoint)
        self._sock = sock
        self._raw = zmq.Socket.shadow(sock.underlying)
        if self._handshake:
            await sock.send_multipart([HANDSHAKE, self.key])
        self._reader = asyncio.ensure_future(self._read())

    def close(self) -> None:
        self.closed = True
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        self._raw = None
        if self._sock is not None:
            if self._monitor is not None:
                try:
                    self._sock.disable_monitor()
                except zmq.ZMQError:
                    pass
                self._raw_monitor = None
                self._monitor.close(linger=0)
                self._monitor = None
            self._sock.close(linger=0)
            self._sock = None
        try:
            for fut in self._waiters.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("worker client closed"))
            # wake whoever iterates: open job streams and events() end instead of waiting forever
            for stream in self._streams.values():
                stream.queue.put_nowait(None)
            self._events.put_nowait(None)
        except RuntimeError:  # closed after its event loop: nobody is left waiting
            pass
        self._waiters.clear()
        self._streams.clear()

    async def __aenter__(self) -> WorkerClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    @property
    def rejections(self) -> dict[str, int]:
        """Events this client refused (bad signature, replay, ...)."""
        return dict(self.session.rejections)

    # ------------------------------------------------------------------ receiving
    async def _read(self) -> None:
        # Wait for readiness, then take what is there synchronously: a message is either still in the
        # socket or already dispatched, never half-way in a future (which is what lets settle() be exact).
        assert self._sock is not None
        sock = self._sock
        while True:
            try:
                await sock.poll()  # POLLIN
            except (asyncio.CancelledError, zmq.ZMQError):
                return
            self._drain(_DRAIN_BATCH)
            await asyncio.sleep(0)  # a flood of previews must not starve the rest of the loop

    def _drain(self, limit: int | None) -> int:
        """Dispatch up to `limit` messages already received (all of them with None); returns how many."""
        count = 0
        while self._raw is not None and (limit is None or count < limit):
            try:
                frames = self._raw.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            except zmq.ZMQError:
                break  # closed under us
            count += 1
            try:
                _, msg = self.session.deserialize(frames)
            except ProtocolError:
                continue  # counted and logged by the Session
            self.last_seen = time.monotonic()
            self._dispatch(msg)
        return count

    def _read_monitor(self) -> None:
        from zmq.utils.monitor import parse_monitor_message

        while self._raw_monitor is not None:
            try:
                event = parse_monitor_message(self._raw_monitor.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_CONNECTED:
                self._peer_links += 1
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self._peer_links = max(0, self._peer_links - 1)

    async def settle(self, timeout: float = 5.0) -> bool:
        """After the worker's process has ended: dispatch every message it sent, up to the moment this socket
        sees its connection close (then every byte the worker wrote has been read), so the news of its death
        never overtakes an image it finished and sent. Needs ``watch_peer``; returns False when the close was
        not seen within `timeout` (what had arrived by then is dispatched anyway)."""
        if self._sock is None or self._monitor is None:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        poller = zmq.asyncio.Poller()
        poller.register(self._monitor, zmq.POLLIN)
        poller.register(self._sock, zmq.POLLIN)  # a full receive queue must keep moving, or the close never comes
        while True:
            self._drain(None)
            self._read_monitor()
            if self._peer_links == 0:
                self._drain(None)  # what arrived before the close was reported
                return True
            remaining = deadline - loop.time()
            if remaining <= 0 or self._sock is None:
                log.warning("worker %s: its connection did not close %.0f s after its process ended",
                            self.name, timeout)
                return False
            try:
                await poller.poll(timeout=remaining * 1000)
            except zmq.ZMQError:
                return False

    def _dispatch(self, msg: Message) -> None:
        parent = msg.parent_id
        waiter = self._waiters.pop(parent, None) if parent else None
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(msg)
            return
        stream = self._streams.get(parent) if parent else None
        if stream is not None:
            stream.queue.put_nowait(msg)
            if msg.msg_type in FINAL_EVENTS:
                del self._streams[stream.msg_id]  # even if nobody iterates it, the stream ends here
            return
        if self.on_event is not None:
            try:
                result = self.on_event(msg)
                if asyncio.iscoroutine(result):
                    task = asyncio.ensure_future(result)
                    self._handler_tasks.add(task)  # held until done: the loop keeps only weak references
                    task.add_done_callback(self._handler_tasks.discard)
            except Exception:
                log.exception("on_event handler failed for %s", msg.msg_type)
            return
        self._events.put_nowait(msg)

    async def events(self) -> AsyncIterator[Message]:
        """Events nobody else claimed, as they arrive (ends when the client is closed)."""
        while True:
            msg = await self._events.get()
            if msg is None:
                return
            yield msg

    async def next_event(self, timeout: float | None = None) -> Message:
        msg = await asyncio.wait_for(self._events.get(), timeout)
        if msg is None:
            raise ConnectionError("worker client closed")
        return msg

    # ------------------------------------------------------------------ sending
    async def request(
        self,
        msg_type: str,
        content: Mapping[str, Any] | None = None,
        buffers: Sequence[bytes] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Sign and send a request; returns its msg_id (the parent id of every event it causes)."""
        if self._sock is None:
            await self.connect()
        assert self._sock is not None
        msg = self.session.msg(msg_type, content, metadata=metadata, buffers=buffers)
        self.session.send(self._sock, msg)  # non-blocking on a DEALER below its HWM
        return str(msg["msg_id"])

    async def call(
        self,
        msg_type: str,
        content: Mapping[str, Any] | None = None,
        buffers: Sequence[bytes] = (),
        timeout: float | None = 10.0,
    ) -> Message:
        """Send a request and wait for the first event whose parent it is (raises TimeoutError)."""
        if self._sock is None:
            await self.connect()
        assert self._sock is not None
        msg = self.session.msg(msg_type, content, buffers=buffers)
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiters[msg["msg_id"]] = fut
        try:
            self.session.send(self._sock, msg)
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters.pop(msg["msg_id"], None)

    async def start_job(
        self, msg_type: str, content: Mapping[str, Any], buffers: Sequence[bytes] = ()
    ) -> JobEvents:
        """Send a job request (generate, upscale, chat, load_model) and return its event stream."""
        if self._sock is None:
            await self.connect()
        assert self._sock is not None
        msg = self.session.msg(msg_type, content, buffers=buffers)
        job = JobEvents(self, msg["msg_id"], str(content.get("job_id") or msg["msg_id"]))
        self._streams[msg["msg_id"]] = job  # registered before sending: no event can slip past
        self.session.send(self._sock, msg)
        return job

    async def hello(self, timeout: float | None = 10.0) -> Message:
        return await self.call("hello_request", {"client": self.name}, timeout=timeout)

    async def status(self, timeout: float | None = 5.0) -> Message:
        return await self.call("status", {}, timeout=timeout)

    async def heartbeat(self, timeout: float | None = 5.0) -> float:
        """Round trip time in seconds; the reply (metadata: busy_job, since_activity, queue) is ``last_heartbeat``."""
        start = time.perf_counter()
        reply = await self.call("heartbeat", {"seq": next(self._seq)}, timeout=timeout)
        rtt = time.perf_counter() - start
        self.last_heartbeat = reply
        return rtt

    async def cancel(self, job_id: str) -> str:
        return await self.request("cancel", {"job_id": job_id})

    async def shutdown(self, reason: str = "", timeout: float | None = 5.0) -> Message | None:
        """Ask the worker to exit; returns its ``ack`` (None when it did not answer in time)."""
        try:
            return await self.call("shutdown", {"reason": reason} if reason else {}, timeout=timeout)
        except TimeoutError:
            return None


# --------------------------------------------------------------------------- local processes


@dataclass
class LocalWorkerProcess:
    """A worker started by ``spawn_local_worker``."""

    kind: str
    name: str
    process: subprocess.Popen[bytes]
    endpoint: str
    key: bytes = field(repr=False)
    socket_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def client(self, **kwargs: Any) -> WorkerClient:
        return WorkerClient(self.endpoint, key=self.key, name=kwargs.pop("name", f"core->{self.name}"), **kwargs)

    async def wait_exit(self) -> int:
        """Return the exit status (negative: the signal) the moment the process ends. The kernel says so
        through a pidfd the event loop watches; without pidfds a thread waits on the process instead."""
        status = self.process.poll()
        if status is not None:
            return status
        try:
            fd = os.pidfd_open(self.process.pid)
        except (AttributeError, OSError):  # no pidfds here (or already reaped): wait in a thread
            return await asyncio.to_thread(self.process.wait)
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ended.done():
                ended.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await ended
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        return self.process.wait()  # reaps a process that has already ended: does not block

    def kill(self) -> int:
        """SIGKILL and reap; returns the exit status."""
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait()

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM (clean exit: model freed, sockets closed), SIGKILL after ``timeout``; returns the status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("worker %s ignored SIGTERM for %.0fs; killing it", self.name, timeout)
                self.process.kill()
        return self.process.wait()


def exit_reason(status: int | None) -> str:
    """How a process ended, in words: "killed by SIGKILL", "exited with code 3 (its socket is in use ...)"."""
    if status is None:
        return "is still running"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    meaning = _EXIT_MEANINGS.get(status)
    return f"exited with code {status}" + (f" ({meaning})" if meaning else "")


def spawn_local_worker(
    kind: str,
    run_dir: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    threads: int = 0,
    name: str | None = None,
    extra_args: Iterable[str] = (),
    *,
    log_file: str | os.PathLike[str] | None = None,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
) -> LocalWorkerProcess:
    """Start ``python -m workers KIND`` listening on ``ipc://<run_dir>/<name>.sock``.

    A fresh 32-byte key goes through an inherited pipe (``--key-fd``); the worker exits when this
    process does (``--parent-pid``). It stays in this process group (a group kill takes it down too)
    unless ``new_session``; stop it with ``terminate()`` or a ``shutdown`` request. With ``log_file`` its
    stdout/stderr go to /dev/null and its log to that file; otherwise they are inherited.
    """
    if kind not in ("sd", "llm"):
        raise ValueError("kind must be 'sd' or 'llm'")
    name = name or kind
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"worker name {name!r} must be letters, digits, '-' or '_'")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    socket_path = run_dir.resolve() / f"{name}.sock"
    if len(os.fsencode(socket_path)) > _IPC_PATH_MAX:
        raise ValueError(f"socket path {socket_path} is longer than {_IPC_PATH_MAX} bytes; use a shorter run dir")
    endpoint = f"ipc://{socket_path}"
    key = Session.new_key()
    fd = key_to_pipe(key)
    args = [
        python or sys.executable, "-m", "workers", kind,
        "--listen", endpoint,
        "--key-fd", str(fd),
        "--model-dir", str(Path(model_dir).resolve()),
        "--threads", str(int(threads)),
        "--name", name,
        "--parent-pid", str(os.getpid()),
        *extra_args,
    ]
    if log_file is not None:
        args += ["--log-file", str(log_file)]
    out = subprocess.DEVNULL if log_file is not None else None
    # the package root must be importable however the caller was started
    child_env = dict(env if env is not None else os.environ)
    root = str(Path(__file__).resolve().parents[2])
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, child_env.get("PYTHONPATH", "")) if p)
    try:
        process = subprocess.Popen(
            args, pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=new_session, env=child_env, close_fds=True,
        )
    finally:
        os.close(fd)  # the child has its copy; ours would keep the pipe open
    return LocalWorkerProcess(kind, name, process, endpoint, key, socket_path)
