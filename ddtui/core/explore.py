"""Dynamic exploration: eight variations around an anchor image, for a 3x3 grid with the anchor in the centre.

Each parameter can be locked. Unlocked seeds get new seeds; unlocked numbers (steps, cfg) move to sensible
nearby values; unlocked samplers and schedulers switch to related ones; an unlocked prompt takes one of the
LLM's subtle rewrites. The eight cells are always distinct from each other and from the anchor.
"""

from __future__ import annotations

import random
from typing import Any

LOCKABLE = ("prompt", "seed", "steps", "cfg", "sampler", "scheduler")
CELLS = 8
# Samplers and schedulers that behave alike enough to be "nearby" choices.
SAMPLER_FAMILY = ("euler", "euler_a", "heun", "dpm++2m", "dpm++2mv2", "ipndm", "dpm2", "ddim_trailing")
SCHEDULER_FAMILY = ("discrete", "karras", "exponential", "sgm_uniform", "simple", "smoothstep")


class ExploreError(ValueError):
    """The exploration cannot be built (everything locked, no rewrites for an unlocked prompt, ...)."""


def _nearby_steps(steps: int, rng: random.Random) -> int:
    spread = max(4, round(steps * 0.25))
    choices = [s for s in range(max(1, steps - spread), steps + spread + 1) if s != steps]
    return rng.choice(choices)


def _nearby_cfg(cfg: float, rng: random.Random) -> float:
    # Guidance-distilled models run near 1.0: small moves there, wider ones around 7.
    unit = 0.1 if cfg <= 2 else 0.5
    deltas = [d * unit for d in (-4, -3, -2, -1, 1, 2, 3, 4)]
    return round(max(0.0, min(30.0, cfg + rng.choice(deltas))), 2)


def neighbours(anchor: dict[str, Any], locked: set[str], rewrites: list[str] | None = None,
               seed: int | None = None) -> list[dict[str, Any]]:
    """Eight generation requests around `anchor` (a request dict with the anchor's exact parameters)."""
    unknown = set(locked) - set(LOCKABLE)
    if unknown:
        raise ExploreError(f"cannot lock {', '.join(sorted(unknown))} (lockable: {', '.join(LOCKABLE)})")
    free = [p for p in LOCKABLE if p not in locked]
    if not free:
        raise ExploreError("everything is locked: unlock at least one parameter to explore")
    if "prompt" in free and not rewrites:
        raise ExploreError("the prompt is unlocked but the LLM gave no rewrites")
    rng = random.Random(seed if seed is not None else anchor.get("seed", 0))
    anchor_key = tuple(anchor.get(p) for p in LOCKABLE)
    seen = {anchor_key}
    used_seeds = {anchor.get("seed")}
    cells: list[dict[str, Any]] = []
    attempts = 0
    while len(cells) < CELLS:
        attempts += 1
        if attempts > 500:
            raise ExploreError("could not find eight distinct variations; unlock another parameter")
        cell = dict(anchor, batch=1)
        if "seed" in free:
            s = rng.randrange(0, 2**32)
            while s in used_seeds:
                s = rng.randrange(0, 2**32)
            cell["seed"] = s
        if "steps" in free:
            cell["steps"] = _nearby_steps(int(anchor["steps"]), rng)
        if "cfg" in free:
            cell["cfg"] = _nearby_cfg(float(anchor["cfg"]), rng)
        if "sampler" in free:
            cell["sampler"] = rng.choice([s for s in SAMPLER_FAMILY if s != anchor.get("sampler")])
        if "scheduler" in free:
            cell["scheduler"] = rng.choice([s for s in SCHEDULER_FAMILY if s != anchor.get("scheduler")])
        if "prompt" in free and rewrites:  # never empty here: checked above
            cell["prompt"] = rewrites[len(cells) % len(rewrites)]
        key = tuple(cell.get(p) for p in LOCKABLE)
        if key in seen:
            continue
        seen.add(key)
        used_seeds.add(cell.get("seed"))
        cells.append(cell)
    return cells


# Grid positions (row, column) of the eight cells around the centre, clockwise from the top left.
GRID_POSITIONS = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]
