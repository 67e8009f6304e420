"""Benchmark: history search latency on 100,000 generations with 5 tags each.

Prints p50/p95 of the combined search (text + tag + model + rating + kind) and of the first unfiltered
page, plus a few single-filter cases. Goal: p95 under 20 ms on the 2-core development machine.
Run: python bench/history_query.py [--rows N] [--keep PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ddtui.db.queries import HistoryQuery, search_history, tag_counts  # noqa: E402
from ddtui.db.schema import open_database  # noqa: E402
from ddtui.db.synthetic import MODELS, fill_history  # noqa: E402

GOAL_MS = 20.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def measure(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm the page cache once, as a user's second query would be
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), percentile(times, 95)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--keep", type=Path, help="write the database here instead of a temporary folder")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    path = args.keep or Path(tmp.name) / "history.db"
    if not path.exists():
        db = open_database(path)
        db.disconnect()
        t0 = time.perf_counter()
        fill_history(path, args.rows, tags_per_image=5)
        print(f"filled {args.rows} generations x 5 tags in {time.perf_counter() - t0:.1f} s")
    db = open_database(path)

    first = search_history(db)
    cases = {
        "first page (no filter)": lambda: search_history(db),
        "next page (keyset)": lambda: search_history(db, after=first.next_cursor),
        "text 'fox'": lambda: search_history(db, HistoryQuery(text="fox")),
        "tags watercolor+serene": lambda: search_history(db, HistoryQuery(tags=["watercolor", "serene"])),
        "rating>=4 + favorite": lambda: search_history(db, HistoryQuery(min_rating=4, favorite=True)),
        "date range (one week)": lambda: search_history(
            db, HistoryQuery(date_from=datetime(2025, 1, 10), date_to=datetime(2025, 1, 17))),
        "combined search": lambda: search_history(db, HistoryQuery(
            text="golden castle", tags=["oil painting"], model=MODELS[0], min_rating=1, kind="txt2img")),
        "tag facet counts": lambda: tag_counts(db, limit=40),
    }
    print(f"\n{'query':<28} {'p50 ms':>8} {'p95 ms':>8}")
    results = {}
    for name, fn in cases.items():
        p50, p95 = measure(fn, args.repeat)
        results[name] = (p50, p95)
        print(f"{name:<28} {p50:8.2f} {p95:8.2f}")
    combined_p95 = results["combined search"][1]
    first_p95 = results["first page (no filter)"][1]
    worst = max(p95 for _, p95 in results.values())
    print(f"\ngoal: p95 < {GOAL_MS:.0f} ms; worst p95 {worst:.2f} ms -> {'met' if worst < GOAL_MS else 'MISSED'}")
    print(f"RESULT history_combined_p95_ms={combined_p95:.2f} history_first_page_p95_ms={first_p95:.2f} "
          f"worst_p95_ms={worst:.2f} goal_ms={GOAL_MS:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
