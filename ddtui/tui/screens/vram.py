"""The VRAM screen: each NVIDIA GPU's memory, use and temperature, which of our workers holds what, a short
history; and, on a machine without an NVIDIA GPU, CPU load and RAM instead (read from /proc).

GPU figures come from NVML (`pynvml`, the nvidia-ml-py package); a missing library or driver is a normal
case and the screen says so. Worker states, loaded models and restarts come from the service's core_status,
and worker pids tie processes (GPU memory, or resident memory without a GPU) to worker names.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Label, Static

from ..keys import bindings_for
from ..messages import CoreStatus, ServiceState
from .base import MainScreen, title_bars

SAMPLE_EVERY_S = 1.0
HISTORY = 120


BLOCKS = " ▁▂▃▄▅▆▇█"


def percent_bars(values: list[float], width: int, height: int = 3) -> str:
    """A history of percentages as bars on a fixed 0-100 scale (newest on the right), `height` rows tall."""
    values = values[-width:] if width > 0 else []
    levels = [round(max(0.0, min(100.0, v)) / 100 * 8 * height) for v in values]
    rows = []
    for r in range(height):
        floor = (height - 1 - r) * 8
        rows.append("".join(BLOCKS[max(0, min(8, lv - floor))] for lv in levels).rjust(width))
    return "\n".join(rows)


def human_mb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


@dataclass
class GpuSample:
    index: int
    name: str
    total_mb: float
    used_mb: float
    free_mb: float
    util: float | None
    temp: float | None
    processes: dict[int, float] = field(default_factory=dict)  # pid -> MB


@dataclass
class SystemSample:
    cpus: int
    load: tuple[float, float, float]
    cpu_percent: float | None
    mem_total_mb: float
    mem_available_mb: float
    swap_total_mb: float
    swap_free_mb: float

    @property
    def mem_used_mb(self) -> float:
        return self.mem_total_mb - self.mem_available_mb


@dataclass
class Sample:
    gpus: list[GpuSample]
    gpu_reason: str  # why there are no GPU figures ("" when there are)
    system: SystemSample


class SystemProbe:
    """Reads GPUs through NVML and the CPU and memory from a /proc folder (`proc_root`, for tests)."""

    def __init__(self, proc_root: str | Path = "/proc", use_nvml: bool = True) -> None:
        self.proc = Path(proc_root)
        self.use_nvml = use_nvml
        self._nvml: Any = None
        self._nvml_reason = "" if use_nvml else "GPU probing is off"
        self._last_cpu: tuple[int, int] | None = None
        self._last_percent: float | None = None

    def _init_nvml(self) -> Any:
        if self._nvml is not None or self._nvml_reason:
            return self._nvml
        try:
            import pynvml
        except ImportError:
            self._nvml_reason = "nvidia-ml-py (pynvml) is not installed"
            return None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self._nvml_reason = f"no NVIDIA driver or GPU ({exc})"
            return None
        self._nvml = pynvml
        return pynvml

    def gpus(self) -> tuple[list[GpuSample], str]:
        nv = self._init_nvml()
        if nv is None:
            return [], self._nvml_reason
        out = []
        try:
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                name = nv.nvmlDeviceGetName(h)
                name = name.decode() if isinstance(name, bytes) else str(name)
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                try:
                    util: float | None = float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
                except nv.NVMLError:
                    util = None
                try:
                    temp: float | None = float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
                except nv.NVMLError:
                    temp = None
                procs: dict[int, float] = {}
                try:
                    for p in nv.nvmlDeviceGetComputeRunningProcesses(h):
                        used = p.usedGpuMemory
                        procs[int(p.pid)] = (used or 0) / 2**20
                except nv.NVMLError:
                    pass
                out.append(GpuSample(i, name, mem.total / 2**20, mem.used / 2**20, mem.free / 2**20, util, temp,
                                     procs))
        except nv.NVMLError as exc:
            return [], f"NVML error: {exc}"
        if not out:
            return [], "NVML reports no GPU"
        return out, ""

    def system(self) -> SystemSample:
        cpus = self.cpu_count()
        try:
            parts = (self.proc / "loadavg").read_text().split()
            load = (float(parts[0]), float(parts[1]), float(parts[2]))
        except (OSError, ValueError, IndexError):
            load = (0.0, 0.0, 0.0)
        cpu_percent = None
        try:
            fields = [int(x) for x in (self.proc / "stat").read_text().splitlines()[0].split()[1:]]
            idle, total = fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields)
            if self._last_cpu is None:
                cpu_percent = 100.0 * (total - idle) / max(1, total)  # the first figure: the average since boot
            elif total > self._last_cpu[1]:
                busy = (total - self._last_cpu[1]) - (idle - self._last_cpu[0])
                cpu_percent = 100.0 * busy / (total - self._last_cpu[1])
            else:
                cpu_percent = self._last_percent  # no time has passed for the counters
            self._last_cpu = (idle, total)
            self._last_percent = cpu_percent
        except (OSError, ValueError, IndexError):
            pass
        mem = self.meminfo()
        return SystemSample(cpus, load, cpu_percent, mem.get("MemTotal", 0) / 1024,
                            mem.get("MemAvailable", mem.get("MemFree", 0)) / 1024, mem.get("SwapTotal", 0) / 1024,
                            mem.get("SwapFree", 0) / 1024)

    def cpu_count(self) -> int:
        """CPUs listed in <proc>/stat (what this machine has, or what a test's /proc says)."""
        try:
            lines = (self.proc / "stat").read_text().splitlines()
            count = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
        except OSError:
            count = 0
        return count or os.cpu_count() or 1

    def meminfo(self) -> dict[str, int]:
        out: dict[str, int] = {}
        try:
            for line in (self.proc / "meminfo").read_text().splitlines():
                key, _, rest = line.partition(":")
                value = rest.split()
                if value and value[0].isdigit():
                    out[key] = int(value[0])  # kB
        except OSError:
            pass
        return out

    def rss_mb(self, pid: int) -> float | None:
        """Resident memory of a process, from /proc/<pid>/status."""
        try:
            for line in (self.proc / str(pid) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            return None
        return None

    def sample(self) -> Sample:
        gpus, reason = self.gpus()
        return Sample(gpus, reason, self.system())


class VramScreen(MainScreen[None]):
    """GPU memory (or CPU and RAM), our workers' share of it, and the workers' states."""

    CSS_PATH = Path(__file__).parent / "vram.tcss"
    TITLE = "VRAM"
    BINDINGS = bindings_for("vram")

    sample_every: float = SAMPLE_EVERY_S

    def __init__(self) -> None:
        super().__init__(name="vram")
        self.history: dict[str, deque[float]] = {}
        self.last: Sample | None = None

    @property
    def probe(self) -> SystemProbe:
        if not isinstance(self.app.system_probe, SystemProbe):
            self.app.system_probe = SystemProbe()
        return self.app.system_probe

    def compose(self) -> ComposeResult:
        yield from title_bars()
        yield Static("Reading devices…", id="vram-summary")
        devices: DataTable = DataTable(id="devices", cursor_type="none")
        yield devices
        with Horizontal(id="sparks"):
            with Vertical(classes="spark-box"):
                yield Label("", id="spark-a-label", classes="spark-label")
                yield Static("", id="spark-a", classes="spark")
            with Vertical(classes="spark-box"):
                yield Label("", id="spark-b-label", classes="spark-label")
                yield Static("", id="spark-b", classes="spark")
        yield Label("Our processes", classes="section")
        yield DataTable(id="processes", cursor_type="none")
        yield Label("Workers", classes="section")
        yield DataTable(id="workers", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        workers = self.query_one("#workers", DataTable)
        for key, label in (("name", "Worker"), ("kind", "Kind"), ("state", "State"), ("job", "Job"),
                           ("restarts", "Restarts"), ("model", "Loaded model"), ("device", "Device"),
                           ("pid", "PID"), ("error", "Last error")):
            workers.add_column(label, key=key)
        procs = self.query_one("#processes", DataTable)
        for key, label in (("pid", "PID"), ("worker", "Worker"), ("where", "Where"), ("mem", "Memory")):
            procs.add_column(label, key=key)
        self._show_workers(self.app.link.status)
        self.refresh_now()
        self.set_interval(self.sample_every, self._tick)

    def _tick(self) -> None:
        if self.is_current:
            self.refresh_now()

    def action_refresh_now(self) -> None:
        self.refresh_now()

    @work(group="vram-sample", thread=True, exclusive=True, exit_on_error=False)
    def refresh_now(self) -> None:
        sample = self.probe.sample()
        status = self.app.link.status
        pids = [int(w["pid"]) for w in status.get("workers", []) if w.get("pid")]
        if status.get("pid"):
            pids.append(int(status["pid"]))
        rss = {pid: self.probe.rss_mb(pid) for pid in pids}
        self.app.call_from_thread(self._show_sample, sample, rss)

    def _remember(self, key: str, value: float | None) -> list[float]:
        series = self.history.setdefault(key, deque(maxlen=HISTORY))
        if value is not None:
            series.append(value)
        return list(series)

    def _show_sample(self, sample: Sample, rss: dict[int, float | None]) -> None:
        self.last = sample
        table = self.query_one("#devices", DataTable)
        table.clear(columns=True)
        s = sample.system
        if sample.gpus:
            self.query_one("#vram-summary", Static).update(
                f"{len(sample.gpus)} NVIDIA GPU(s) · refreshed every {self.sample_every:g} s (r: now)")
            for key, label in (("gpu", "GPU"), ("name", "Name"), ("used", "Used"), ("free", "Free"),
                               ("total", "Total"), ("util", "Use"), ("temp", "Temp")):
                table.add_column(label, key=key)
            for g in sample.gpus:
                table.add_row(str(g.index), g.name, Text(f"{human_mb(g.used_mb)} ({100 * g.used_mb / max(1, g.total_mb):.0f}%)"),
                              human_mb(g.free_mb), human_mb(g.total_mb),
                              "-" if g.util is None else f"{g.util:.0f}%", "-" if g.temp is None else f"{g.temp:.0f}°C")
            g0 = sample.gpus[0]
            a = self._remember("gpu0-mem", 100 * g0.used_mb / max(1, g0.total_mb))
            b = self._remember("gpu0-util", g0.util)
            self._spark("a", a, f"GPU 0 memory used: {a[-1]:.0f}%" if a else "GPU 0 memory")
            self._spark("b", b, f"GPU 0 use: {b[-1]:.0f}%" if b else "GPU 0 use: n/a")
        else:
            self.query_one("#vram-summary", Static).update(
                f"[b]No NVIDIA GPU[/b]: {escape(sample.gpu_reason)}. Showing CPU and RAM instead.")
            for key, label in (("what", ""), ("a", "Total"), ("b", "Used"), ("c", "Free / idle"),
                               ("d", "Load (1, 5, 15 min)")):
                table.add_column(label, key=key)
            cpu = "n/a" if s.cpu_percent is None else f"{s.cpu_percent:.0f}%"
            table.add_row("CPU", f"{s.cpus} cores", cpu,
                          "n/a" if s.cpu_percent is None else f"{100 - s.cpu_percent:.0f}%",
                          " ".join(f"{x:.2f}" for x in s.load))
            table.add_row("RAM", human_mb(s.mem_total_mb), f"{human_mb(s.mem_used_mb)} "
                          f"({100 * s.mem_used_mb / max(1, s.mem_total_mb):.0f}%)", human_mb(s.mem_available_mb), "")
            if s.swap_total_mb:
                table.add_row("Swap", human_mb(s.swap_total_mb), human_mb(s.swap_total_mb - s.swap_free_mb),
                              human_mb(s.swap_free_mb), "")
            a = self._remember("cpu", s.cpu_percent)
            b = self._remember("ram", 100 * s.mem_used_mb / max(1, s.mem_total_mb))
            self._spark("a", a, f"CPU use: {a[-1]:.0f}%" if a else "CPU use: measuring…")
            self._spark("b", b, f"RAM used: {b[-1]:.0f}%" if b else "RAM used")
        self._show_processes(sample, rss)

    def _spark(self, which: str, data: list[float], label: str) -> None:
        spark = self.query_one(f"#spark-{which}", Static)
        spark.update(percent_bars(data, max(1, spark.size.width or 40)))
        self.query_one(f"#spark-{which}-label", Label).update(label)

    def _show_processes(self, sample: Sample, rss: dict[int, float | None]) -> None:
        table = self.query_one("#processes", DataTable)
        table.clear()
        workers = {int(w["pid"]): w for w in self.app.link.status.get("workers", []) if w.get("pid")}
        rows = 0
        for g in sample.gpus:
            for pid, mb in sorted(g.processes.items()):
                name = workers.get(pid, {}).get("name", "(not ours)")
                table.add_row(str(pid), name, f"GPU {g.index}", human_mb(mb))
                rows += 1
        if not sample.gpus:
            service_pid = self.app.link.status.get("pid")
            named = {pid: w.get("name", "?") for pid, w in workers.items()}
            if service_pid:
                named[int(service_pid)] = "ddtui service"
            for pid, name in sorted(named.items()):
                mb = rss.get(pid)
                table.add_row(str(pid), name, "RAM (resident)", "-" if mb is None else human_mb(mb))
                rows += 1
        if rows == 0:
            table.add_row("-", "no worker processes known" if not workers else "none on the GPU", "", "")

    # ------------------------------------------------------------------ workers from core_status

    def on_core_status(self, message: CoreStatus) -> None:
        self._show_workers(message.status)

    def on_service_state(self, message: ServiceState) -> None:
        if not message.connected:
            self._show_workers({})

    def _show_workers(self, status: dict[str, Any]) -> None:
        table = self.query_one("#workers", DataTable)
        table.clear()
        workers = status.get("workers", [])
        if not self.app.link.connected:
            table.add_row("-", "", Text("service offline", style="yellow"), "", "", "", "", "",
                          self.app.link.reason)
            return
        for w in workers:
            state = w.get("state", "")
            style = {"idle": "green", "busy": "magenta", "failed": "bold red", "restarting": "yellow"}.get(state, "")
            device = " ".join(x for x in (w.get("device", ""), w.get("backend", "")) if x)
            if w.get("vram_total"):
                device += f" ({human_mb(w.get('vram_free', 0) / 2**20)} free)" if w.get("vram_free", 0) > 2**20 else ""
            table.add_row(w.get("name", "?"), f"{w.get('kind', '')}{'' if w.get('local', True) else ' remote'}",
                          Text(state, style=style), str(w.get("job_id") or ""), str(w.get("restarts", 0)),
                          w.get("loaded_model", "") or "-", device or "-", str(w.get("pid") or ""),
                          Text((w.get("last_error") or "")[:80], style="red"))
