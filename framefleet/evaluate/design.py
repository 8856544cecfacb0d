"""Study design (pure: ids in, planned items and rater sessions out; no I/O, seeded randomness).

A study compares variants of the same asset side by side. `plan_items` builds, per asset, one pair item for
each pair of variants (`all` pairs, or `adjacent` ones in the order the variants were given), with the sides
drawn at random; gold items (the same variant on both sides: the known answer is "same"); and trap items
(the original against a visibly defective copy: the known answer is the original's side). `plan_sessions`
deals the items to raters: every pair item to `raters_per_item` raters (never twice to one rater), gold and
trap items to every rater, each session in its own random order.

    items = plan_items({"a1": ["v-orig", "v-espcn", "v-bicubic"]}, pairs="all", gold=1,
                       traps={"a1": ("v-orig", "v-trap")}, n_traps=1, seed=0)
    sessions = plan_sessions(items, raters_per_item=3, items_per_rater=None, seed=0)   # [[item index, ...], ...]
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from framefleet.errors import InputError

PAIRINGS = ("all", "adjacent")
KINDS = ("pair", "gold", "trap")
MAX_ITEMS = 5000  # a study larger than this is a mistake in its options (and a browser session nobody finishes)
MAX_RATERS = 5000


@dataclass(frozen=True)
class PlannedItem:
    kind: str  # "pair" | "gold" | "trap"
    asset: str
    left: str  # variant id shown on the left
    right: str
    expected: str | None = None  # "left" | "right" | "same" for gold and trap items


def pair_indices(n: int, pairs: str) -> list[tuple[int, int]]:
    """Index pairs of `n` variants: every pair (`all`) or neighbours in the given order (`adjacent`)."""
    if pairs not in PAIRINGS:
        raise InputError(f"--pairs {pairs!r}: use one of {', '.join(PAIRINGS)}")
    if pairs == "adjacent":
        return [(i, i + 1) for i in range(n - 1)]
    return list(itertools.combinations(range(n), 2))


def plan_items(
    variants: Mapping[str, Sequence[str]],
    *,
    pairs: str = "all",
    gold: int = 0,
    traps: Mapping[str, tuple[str, str]] | None = None,
    n_traps: int = 0,
    seed: int = 0,
) -> list[PlannedItem]:
    """The items of a study. `variants`: asset → its variant ids in the order given; `traps`: asset →
    (original id, defective copy id) for the assets that may carry a trap item."""
    if gold < 0 or n_traps < 0:
        raise InputError("--gold and --traps must be ≥ 0")
    rng = random.Random(seed)
    items: list[PlannedItem] = []
    for asset, ids in variants.items():
        if len(ids) < 2:
            raise InputError(f"asset {asset}: a side-by-side study needs at least two variants, got {len(ids)}")
        if len(set(ids)) != len(ids):
            raise InputError(f"asset {asset}: the same variant is named twice in --variants")
        for i, j in pair_indices(len(ids), pairs):
            a, b = (ids[i], ids[j]) if rng.random() < 0.5 else (ids[j], ids[i])
            items.append(PlannedItem("pair", asset, a, b))
    stimuli = [(asset, v) for asset, ids in variants.items() for v in ids]
    rng.shuffle(stimuli)
    for k in range(gold):
        asset, v = stimuli[k % len(stimuli)]
        items.append(PlannedItem("gold", asset, v, v, "same"))
    trap_assets = list((traps or {}).keys())
    if n_traps and not trap_assets:
        raise InputError("trap items need an original and its defective copy for at least one asset")
    rng.shuffle(trap_assets)
    for k in range(n_traps):
        asset = trap_assets[k % len(trap_assets)]
        original, broken = (traps or {})[asset]
        if rng.random() < 0.5:
            items.append(PlannedItem("trap", asset, original, broken, "left"))
        else:
            items.append(PlannedItem("trap", asset, broken, original, "right"))
    if len(items) > MAX_ITEMS:
        raise InputError(f"this study would have {len(items)} items (at most {MAX_ITEMS}); use --pairs adjacent")
    return items


def plan_sessions(
    items: Sequence[PlannedItem], *, raters_per_item: int, items_per_rater: int | None = None, seed: int = 0
) -> list[list[int]]:
    """Each rater's items (indices into `items`), in the order they are shown.

    Without `items_per_rater` every rater sees every item, and there are `raters_per_item` raters. With it,
    pair items are dealt so that each reaches `raters_per_item` different raters, the least loaded rater first;
    every rater also gets all gold and trap items (they screen the rater, so each rater needs them)."""
    if raters_per_item < 1:
        raise InputError(f"--raters-per-item must be ≥ 1, got {raters_per_item}")
    if items_per_rater is not None and items_per_rater < 1:
        raise InputError(f"--items-per-rater must be ≥ 1, got {items_per_rater}")
    rng = random.Random(seed + 1)
    pair_ix = [i for i, it in enumerate(items) if it.kind == "pair"]
    check_ix = [i for i, it in enumerate(items) if it.kind != "pair"]
    if items_per_rater is None or items_per_rater >= len(pair_ix):
        sessions = [list(pair_ix) for _ in range(raters_per_item)]
    else:
        n_raters = max(raters_per_item, math.ceil(len(pair_ix) * raters_per_item / items_per_rater))
        if n_raters > MAX_RATERS:
            raise InputError(f"this study would need {n_raters} raters (at most {MAX_RATERS}); raise --items-per-rater")
        sessions = [[] for _ in range(n_raters)]
        order = list(pair_ix)
        for _ in range(raters_per_item):
            rng.shuffle(order)
            for i in order:
                free = [s for s in sessions if i not in s]  # at most raters_per_item - 1 sessions hold it already
                least = min(len(s) for s in free)
                rng.choice([s for s in free if len(s) == least]).append(i)
    for s in sessions:
        s.extend(check_ix)
        rng.shuffle(s)
    return sessions


__all__ = ["KINDS", "PAIRINGS", "PlannedItem", "pair_indices", "plan_items", "plan_sessions"]
