"""The run plan: warm-up runs first (per variant, in declaration order), then one round per
repetition with every variant once, in an order shuffled by random.Random(seed + round), so slow
drift of the machine (thermal, background load) is spread over all variants instead of biasing
whichever ran last. The plan is a pure function of the campaign; the store records it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from benchrun.campaign.spec import Campaign
from benchrun.errors import ConfigError


@dataclass(frozen=True)
class PlannedRun:
    """One entry of the plan. ``index`` is its position (runs.plan_index in the store);
    ``repetition`` counts from 0 within the warm-up runs of a variant, or within the rounds."""

    index: int
    variant: str
    repetition: int
    warmup: bool

    def to_json(self) -> list[Any]:
        return [self.variant, self.repetition, int(self.warmup)]


def make_plan(campaign: Campaign, repetitions: Optional[int] = None) -> list[PlannedRun]:
    """The plan for ``repetitions`` rounds (default campaign.repetitions, which must then be a
    number: an "auto" campaign is planned once its count is chosen, see Campaign.auto_repetitions).
    """
    rounds = campaign.repetitions if repetitions is None else repetitions
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise ConfigError(
            f"campaign '{campaign.name}': repetitions {rounds!r} must be chosen before planning "
            "(Campaign.auto_repetitions)"
        )
    names = [v.name for v in campaign.variants]
    entries: list[tuple[str, int, bool]] = []
    for name in names:
        entries += [(name, w, True) for w in range(campaign.warmup)]
    for rnd in range(rounds):
        order = list(names)
        random.Random(campaign.seed + rnd).shuffle(order)
        entries += [(name, rnd, False) for name in order]
    return [PlannedRun(i, v, r, w) for i, (v, r, w) in enumerate(entries)]


def plan_from_json(doc: Sequence[Sequence[Any]]) -> list[PlannedRun]:
    """The plan as recorded in the store (campaigns.spec["plan"]): [[variant, repetition,
    warmup 0/1], ...] in plan order."""
    try:
        return [PlannedRun(i, str(v), int(r), bool(w)) for i, (v, r, w) in enumerate(doc)]
    except (TypeError, ValueError):
        raise ConfigError(
            "stored plan: malformed (expected [[variant, repetition, warmup]])"
        ) from None


__all__ = ["PlannedRun", "make_plan", "plan_from_json"]
