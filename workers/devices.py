"""What hardware a worker runs on: compute backend of the native library, GPU memory, RAM and CPU.

Owns the facts reported in a worker's ``hello``/``state`` events. GPU numbers come from NVML
(``pynvml`` from nvidia-ml-py), imported and initialised lazily and guarded: on a machine without an
NVIDIA driver every VRAM figure is 0 and nothing raises. RAM and CPU come from ``/proc`` where it
exists. Nothing here imports a binding; callers pass the loaded library handle or folder to
``backend_of``. Must never import Textual.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from pathlib import Path
from typing import Any

__all__ = ["backend_of", "gpu_info", "vram_free", "ram_info", "cpu_info", "device_info"]

log = logging.getLogger("ddtui.worker.devices")

# exported ggml symbol -> backend name (HIP builds reuse the CUDA names)
_BACKEND_SYMBOLS = (
    ("ggml_backend_cuda_init", "cuda"),
    ("ggml_backend_vk_init", "vulkan"),
    ("ggml_backend_metal_init", "metal"),
    ("ggml_backend_sycl_init", "sycl"),
    ("ggml_backend_opencl_init", "opencl"),
)
# ggml backend plugin library name fragment -> backend name (llama.cpp ships backends as separate .so)
_BACKEND_FILES = (("cuda", "cuda"), ("hip", "rocm"), ("vulkan", "vulkan"), ("metal", "metal"),
                  ("sycl", "sycl"), ("opencl", "opencl"))

_nvml_lock = threading.Lock()
_nvml_state: dict[str, Any] = {"tried": False, "ok": False, "mod": None}


def backend_of(library: Any = None, folder: str | os.PathLike[str] | None = None) -> str:
    """"cuda", "vulkan", "metal", ... or "cpu".

    From the symbols a ctypes ``library`` exports (stable-diffusion.cpp links ggml statically) or the
    backend plugin files in ``folder`` (llama.cpp ships ``libggml-cuda.so`` and friends).
    """
    if library is not None:
        for symbol, name in _BACKEND_SYMBOLS:
            try:
                getattr(library, symbol)
                return name
            except AttributeError:
                continue
    if folder is not None:
        try:
            names = [p.name.lower() for p in Path(folder).iterdir()]
        except OSError:
            names = []
        for fragment, name in _BACKEND_FILES:
            if any(n.startswith("libggml-") and fragment in n for n in names):
                return name
    return "cpu"


def _nvml() -> Any:
    """The initialised pynvml module, or None when there is no usable NVIDIA driver."""
    with _nvml_lock:
        if not _nvml_state["tried"]:
            _nvml_state["tried"] = True
            try:
                import pynvml  # nvidia-ml-py

                pynvml.nvmlInit()
                _nvml_state["mod"] = pynvml
                _nvml_state["ok"] = True
            except Exception as exc:  # no driver, no library, container without /dev/nvidia*
                log.debug("NVML unavailable: %s", exc)
        return _nvml_state["mod"] if _nvml_state["ok"] else None


def _gpu_index() -> int:
    # the first visible device is the one ggml uses by default
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return int(visible) if visible.isdigit() else 0


def gpu_info() -> dict[str, Any]:
    """{name, vram_total, vram_free} of the first visible NVIDIA GPU; zeros and "" without one."""
    nvml = _nvml()
    if nvml is None:
        return {"name": "", "vram_total": 0, "vram_free": 0}
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(_gpu_index())
        mem = nvml.nvmlDeviceGetMemoryInfo(handle)
        name = nvml.nvmlDeviceGetName(handle)
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return {"name": str(name), "vram_total": int(mem.total), "vram_free": int(mem.free)}
    except Exception as exc:  # index out of range (UUID in CUDA_VISIBLE_DEVICES), MIG quirks
        log.debug("NVML query failed: %s", exc)
        return {"name": "", "vram_total": 0, "vram_free": 0}


def vram_free() -> int:
    return int(gpu_info()["vram_free"])


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    out[key] = int(parts[0]) * 1024  # values are in kB
    except OSError:
        pass
    return out


def ram_info() -> dict[str, int]:
    """{ram_total, ram_available} in bytes (0 where unknown)."""
    info = _meminfo()
    total = info.get("MemTotal", 0)
    if not total and hasattr(os, "sysconf"):
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            total = 0
    return {"ram_total": total, "ram_available": info.get("MemAvailable", 0)}


def cpu_info() -> dict[str, Any]:
    """{cpu_name, cpu_count (usable by this process)}."""
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    name = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    return {"cpu_name": name or platform.processor() or platform.machine(), "cpu_count": count}


def device_info(backend: str = "cpu") -> dict[str, Any]:
    """Everything ``hello`` reports about the machine; ``device`` names the GPU when the backend uses one."""
    gpu = gpu_info()
    cpu = cpu_info()
    on_gpu = backend in ("cuda", "rocm") and bool(gpu["name"])
    return {
        "backend": backend,
        "device": gpu["name"] if on_gpu else (cpu["cpu_name"] or "cpu"),
        "vram_total": gpu["vram_total"],
        "vram_free": gpu["vram_free"],
        "gpu_name": gpu["name"],
        **ram_info(),
        **cpu,
    }
