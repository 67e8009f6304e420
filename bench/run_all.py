"""Run every benchmark in bench/ and print one table: figure, value, goal, baseline, ratio.

Each benchmark is a script that ends with a `RESULT key=value ...` line; this runner starts each one in its own
process (so one cannot warm another's caches), reads that line, and lays the figures out side by side with the
machine they ran on. `--markdown` prints the table for the README.
Run: python bench/run_all.py [--quick] [--markdown] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent


@dataclass
class Figure:
    label: str
    key: str
    unit: str
    goal: str = ""
    baseline_key: str = ""  # the ratio column is value / baseline, both measured in the same run


# script, arguments (full run), arguments (--quick), figures
BENCHMARKS: list[tuple[str, list[str], list[str], list[Figure]]] = [
    ("history_query.py", [], ["--rows", "20000", "--repeat", "20"], [
        Figure("history search p95, combined filters (100k rows)", "history_combined_p95_ms", "ms", "< 20 ms"),
        Figure("history first page p95 (100k rows)", "history_first_page_p95_ms", "ms", "< 20 ms"),
        Figure("history worst query p95 (100k rows)", "worst_p95_ms", "ms", "< 20 ms"),
    ]),
    ("protocol.py", [], [], [
        Figure("signed round trip, ipc, small message", "protocol_signed_rtt_us", "us", "",
               "baseline_unsigned_rtt_us"),
    ]),
    ("overhead.py", [], ["--rounds", "3"], [
        Figure("one 64x64 image through the worker vs in-process", "worker_s", "s", "ratio <= 1.03", "direct_s"),
        Figure("second job on the same model (no reload) vs first", "second_job_s", "s", "", "first_job_s"),
        Figure("worker heartbeat round trip during a job", "heartbeat_busy_ms", "ms"),
    ]),
    ("parallel.py", [], ["--rounds", "2"], [
        Figure("SD batch and LLM chat side by side vs one after the other", "together_s", "s", "ratio < 1",
               "one_after_other_s"),
    ]),
    ("queue_throughput.py", [], ["--jobs", "100"], [
        Figure("queue dispatch, trivial jobs", "queue_jobs_per_s", "jobs/s", "", "queue_direct_per_s"),
        Figure("recording 64x64 images (atomic + row)", "record_images_per_s", "img/s", "", "record_plain_per_s"),
    ]),
    ("tagging_rate.py", [], ["--images", "10"], [
        Figure("tagging with the demo LLM, text path", "tag_text_per_s", "img/s", "", "tag_direct_per_s"),
        Figure("tagging with the demo LLM, vision path", "tag_vision_per_s", "img/s", "", ""),
    ]),
    ("import_rate.py", [], ["--files", "200"], [
        Figure("import 512x512 files from other tools", "import_per_s", "img/s", "", "copy_per_s"),
    ]),
    ("graphics_tiles.py", [], ["--images", "150", "--pages", "2"], [
        Figure("history grid: page to 40+ sixel tiles (encodings cached)", "tiles_sixel_ms", "ms", "< 150 ms"),
        Figure("history grid: page to 40+ kitty tiles (placed directly)", "tiles_kitty_ms", "ms", "< 150 ms"),
        Figure("history grid: page to 40+ kitty tiles (placeholders)", "tiles_placeholders_ms", "ms", "< 150 ms"),
        Figure("history grid: page to 40+ half-cell tiles", "tiles_halfcell_ms", "ms", "< 150 ms"),
        Figure("history grid: first sixel encoding of a screen of tiles", "tiles_sixel_first_ms", "ms"),
    ]),
    ("tui_startup.py", [], [], [
        Figure("launch to first usable frame (100k rows)", "tui_first_frame_s", "s", "< 1 s"),
        Figure("history grid: next page (100k rows)", "history_next_page_ms", "ms", "< 100 ms"),
    ]),
    ("model_families.py", [], [], [
        Figure("full-size SD1.5 checkpoint: load", "sd15_load_s", "s"),
        Figure("full-size SD1.5: first 64x64 job (2 steps, cfg 7)", "sd15_first_job_s", "s"),
        Figure("SD1.5 model hash after a restart vs first hash", "sd15_hash_cached_s", "s", "", "sd15_hash_s"),
        Figure("demo FLUX.2-klein set: load", "flux2demo_load_s", "s"),
    ]),
]


def parse_result(output: str) -> dict[str, str]:
    for line in reversed(output.splitlines()):
        if line.startswith("RESULT "):
            return dict(item.split("=", 1) for item in line[7:].split() if "=" in item)
    return {}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def fmt(value: str) -> str:
    try:
        v = float(value)
    except ValueError:
        return value
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a fast look")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--only", nargs="*", help="benchmark script names to run")
    args = ap.parse_args()
    rows: list[tuple[str, str, str, str, str]] = []
    failures = []
    started = time.strftime("%Y-%m-%d %H:%M")
    for script, full, quick, figures in BENCHMARKS:
        if args.only and script not in args.only and script.removesuffix(".py") not in args.only:
            continue
        print(f"running {script} ...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, str(BENCH / script), *(quick if args.quick else full)],
                              capture_output=True, text=True, cwd=BENCH.parent)
        result = parse_result(proc.stdout)
        if proc.returncode != 0 or not result:
            failures.append(f"{script} failed (code {proc.returncode}): {proc.stderr.strip()[-400:]}")
            continue
        for f in figures:
            value = result.get(f.key, "n/a")
            baseline = result.get(f.baseline_key, "") if f.baseline_key else ""
            ratio = ""
            try:
                ratio = f"{float(value) / float(baseline):.3f}" if baseline else ""
            except (ValueError, ZeroDivisionError):
                ratio = ""
            rows.append((f.label, f"{fmt(value)} {f.unit}", f.goal, f"{fmt(baseline)} {f.unit}" if baseline else "",
                         ratio))
    header = ("figure", "value", "goal", "baseline", "ratio")
    if args.markdown:
        print(f"Measured {started} on {machine()}{' (--quick sizes)' if args.quick else ''}.\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        print(f"{started} on {machine()}")
        for row in [header, *rows]:
            print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
