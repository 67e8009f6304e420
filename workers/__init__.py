"""ddtui worker processes: one stable-diffusion.cpp or llama.cpp model per process, driven over signed ZeroMQ.

Owns the worker entry points: ``main(argv)`` (what ``python -m workers`` and ``ddtui worker`` call) and
``run_worker(kind, listen, ...)``. The loop itself is in ``workers.loop``, the backends in
``workers.sd_worker`` and ``workers.llm_worker``, hardware facts in ``workers.devices``. Importing this
package loads neither binding; never imports Textual.

    python -m workers {sd|llm} --listen ENDPOINT [--key-fd N] [--curve-keys DIR] [--model-dir DIR]
        [--threads N] [--name NAME] [--parent-pid PID] [--heartbeat-timeout SECONDS]
        [--max-message-mb N] [--log-file PATH]
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import sys
from pathlib import Path

__all__ = ["main", "run_worker", "build_parser", "KINDS"]

KINDS = ("sd", "llm")


def _threads(threads: int) -> int:
    # 0 = automatic: half the usable cores (ggml gains little from hyper-threads)
    if threads > 0:
        return threads
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 2
    return max(1, cores // 2)


def _setup_logging(name: str, log_file: str | os.PathLike[str] | None) -> None:
    root = logging.getLogger()
    if getattr(root, "_ddtui_worker_logging", False):
        return
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {name}[%(process)d] %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # a segfault in native code then leaves the Python stack of every thread in the log
    stream = getattr(handler, "stream", None)
    if stream is not None and hasattr(stream, "fileno"):
        faulthandler.enable(file=stream, all_threads=True)
    logging.getLogger("ddtui.worker.sdcpp").setLevel(logging.WARNING)  # ggml is chatty at INFO
    root._ddtui_worker_logging = True  # type: ignore[attr-defined]


def _silence_stdout() -> None:
    # native code prints progress bars and newlines straight to fd 1; the worker speaks only through logs
    try:
        sys.stdout.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def _default_model_dir() -> Path:
    from ddtui.config import load_config, resolve_home

    return load_config(resolve_home()).model_dir


def run_worker(
    kind: str,
    listen: str,
    *,
    key: bytes | None = None,
    curve_keys: str | os.PathLike[str] | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    threads: int = 0,
    name: str | None = None,
    parent_pid: int | None = None,
    heartbeat_timeout: float = 0.0,
    max_message_mb: int = 64,
    log_file: str | os.PathLike[str] | None = None,
    shutdown_grace: float = 10.0,
) -> int:
    """Run a worker until it is told to stop; returns the exit code.

    ``key``: the per-run HMAC key shared with a local client (from ``--key-fd``). ``curve_keys``: a
    folder with ``server.key_secret`` and ``allowed_clients/`` for a remote CURVE worker; without
    ``key`` each client sends its own key in the ``ddtui-session-key/1`` handshake.
    """
    from .loop import EXIT_USAGE, WorkerLoop, install_signal_handlers

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    name = name or f"{kind}-{os.getpid()}"
    _setup_logging(name, log_file)
    log = logging.getLogger("ddtui.worker")
    model_path = Path(model_dir) if model_dir else _default_model_dir()
    threads = _threads(threads)
    if kind == "sd":
        from .sd_worker import SDBackend as backend_class
    else:
        from .llm_worker import LLMBackend as backend_class  # type: ignore[assignment]
    try:
        backend = backend_class(model_path, threads)
    except ImportError as exc:
        log.error("the %s binding is not installed: %s", kind, exc)
        return EXIT_USAGE
    try:
        loop = WorkerLoop(
            backend, listen, key=key, curve_keys=curve_keys, name=name, parent_pid=parent_pid,
            heartbeat_timeout=heartbeat_timeout, max_message_bytes=int(max_message_mb) * 1024 * 1024,
            shutdown_grace=shutdown_grace,
        )
    except ValueError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    install_signal_handlers(loop)
    _silence_stdout()
    return loop.serve()


def build_parser(prog: str = "python -m workers") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Run a ddtui stable-diffusion.cpp or llama.cpp worker.")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--listen", required=True, help="ipc://PATH (local) or tcp://HOST:PORT (remote)")
    parser.add_argument("--key-fd", type=int, help="inherited pipe fd carrying the per-run HMAC key")
    parser.add_argument("--curve-keys", help="folder with server.key_secret and allowed_clients/ (remote)")
    parser.add_argument("--model-dir", help="model folder (default: the configured model_dir)")
    parser.add_argument("--threads", type=int, default=0, help="threads per model (0: half the cores)")
    parser.add_argument("--name", help="name used in logs and hello")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    parser.add_argument("--heartbeat-timeout", type=float, default=0.0,
                        help="exit when no request arrives for this many seconds (0: never)")
    parser.add_argument("--max-message-mb", type=int, default=64, help="largest accepted message")
    parser.add_argument("--log-file", help="append logs here instead of stderr")
    parser.add_argument("--shutdown-grace", type=float, default=10.0,
                        help="seconds a running job may take to finish after a stop request")
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m workers") -> int:
    args = build_parser(prog).parse_args(argv)
    key = None
    if args.key_fd is not None:
        from ddtui.protocol import read_key_from_fd

        try:
            key = read_key_from_fd(args.key_fd)
        except OSError as exc:
            print(f"cannot read the key from fd {args.key_fd}: {exc}", file=sys.stderr)
            return 2
    if key is None and not args.curve_keys:
        print("a worker needs --key-fd (local) or --curve-keys (remote)", file=sys.stderr)
        return 2
    return run_worker(
        args.kind, args.listen, key=key, curve_keys=args.curve_keys, model_dir=args.model_dir,
        threads=args.threads, name=args.name, parent_pid=args.parent_pid,
        heartbeat_timeout=args.heartbeat_timeout, max_message_mb=args.max_message_mb,
        log_file=args.log_file, shutdown_grace=args.shutdown_grace,
    )
