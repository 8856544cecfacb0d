"""Studies over stored variants: build one (resolve the variants, make the trap copies, measure the stimuli,
plan items and rater sessions, write it all in one transaction), export its votes, and gather what the
analysis (`evaluate.stats.analyse`) takes.

    created = create_study(store, StudySpec(name="sr-1", assets=["a1"], variants=["original", "espcn", "bicubic"]))
    created.links("http://127.0.0.1:8800")         # one rating link per rater
    write_votes(store, created.study.id, Path("votes.csv"))

Variants are named as on `--variants`: a variant's own name (`original`, `h264-480p`, `enhanced-espcn-x2`)
or a model name (`espcn`: the asset's variant made by `enhance --model espcn`, when there is exactly one).
Everything is checked before anything is written: an unknown asset or variant writes nothing.
"""

from __future__ import annotations

import csv
import itertools
import json
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framefleet.config import Settings
from framefleet.errors import InputError
from framefleet.evaluate.design import PlannedItem, plan_items, plan_sessions
from framefleet.store import Producer, Store, Variant
from framefleet.store.models import Asset, Study, StudyItem, StudyRater
from framefleet.store.studies import StudyStore

ORIGINAL = "original"
TRAP_LABEL = "trap"
TRAP_PRODUCER = Producer("study-trap", "1", {"defect": "blocks", "block_fraction": 12, "crf": 40})
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_. ")
METRIC_KEYS = ("psnr", "ssim", "vmaf")  # the enhance self-check's proxy scores of the model (tasks/gain.py)


@dataclass(frozen=True)
class StudySpec:
    name: str
    assets: Sequence[str]
    variants: Sequence[str]
    pairs: str = "all"
    gold: int = 2
    traps: int = 1
    raters_per_item: int = 3
    items_per_rater: int | None = None
    seed: int = 0
    measure: bool = True  # no-reference estimate of every stimulus (the analysis correlates it with MOS)


@dataclass
class CreatedStudy:
    study: Study
    items: list[StudyItem]
    raters: list[StudyRater]
    stimuli: dict[str, dict[str, Any]] = field(default_factory=dict)

    def links(self, base_url: str) -> list[dict[str, Any]]:
        base = base_url.rstrip("/")
        return [{"rater": r.id, "token": r.token, "url": f"{base}/rate/{r.token}", "items": len(r.items)}
                for r in self.raters]  # fmt: skip

    def to_dict(self, base_url: str) -> dict[str, Any]:
        kinds = {k: sum(1 for i in self.items if i.kind == k) for k in ("pair", "gold", "trap")}
        return {"study": {"id": self.study.id, "name": self.study.name, "config": self.study.config},
                "items": kinds, "raters": self.links(base_url)}  # fmt: skip


def resolve_variant(asset: Asset, label: str) -> Variant:
    """The asset's ready variant named `label`, or made by the model `label` (exactly one)."""
    ready = [v for v in asset.variants if v.status == "ready" and v.blob_key is not None]
    exact = [v for v in ready if v.name == label]
    if exact:
        return exact[0]
    by_model = [v for v in ready if v.producer_model == f"enhance-{label}" or v.name.startswith(f"enhanced-{label}-")]
    if len(by_model) == 1:
        return by_model[0]
    names = ", ".join(sorted(v.name for v in ready)) or "none"
    if by_model:
        many = ", ".join(sorted(v.name for v in by_model))
        raise InputError(f"asset {asset.id}: {label!r} matches several variants ({many}); name one of them")
    raise InputError(
        f"asset {asset.id} has no variant {label!r} (its variants: {names}); "
        f"make it with `framefleet enhance {asset.id} --model {label}` or pick one of those"
    )


def _check_spec(spec: StudySpec) -> None:
    if not spec.name.strip() or len(spec.name) > 128 or not set(spec.name) <= NAME_CHARS:
        raise InputError(f"--name {spec.name!r}: use 1-128 letters, digits, spaces, '-', '_' or '.'")
    if not spec.assets:
        raise InputError("give at least one --asset")
    if len(set(spec.assets)) != len(spec.assets):
        raise InputError("an asset is named twice in --asset")
    if len(spec.variants) < 2 or len(set(spec.variants)) != len(spec.variants):
        raise InputError(f"--variants {','.join(spec.variants)}: name at least two different variants")
    if spec.traps and ORIGINAL not in spec.variants:
        raise InputError("trap items compare the original with a defective copy: add 'original' to --variants "
                         "or pass --traps 0")  # fmt: skip


def trap_variant(store: Store, original: Variant, settings: Settings) -> Variant:
    """A visibly defective copy of `original` (coarse blocks, heavy compression), stored as its own variant
    (producer `study-trap`; made once per original and reused by every later study)."""
    import cv2

    from framefleet.media import EncodeSettings, encode_frames, iter_timed_frames, probe
    from framefleet.tasks._variants import store_variant, video_variant

    producer = Producer(TRAP_PRODUCER.model, TRAP_PRODUCER.version, {**TRAP_PRODUCER.params, "parent": original.id})
    existing = store.find_variant(original.asset_id, producer)
    if existing is not None and existing.status == "ready":
        return existing
    assert original.blob_key is not None
    src = store.blobs.open_path(original.blob_key)
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)

    def broken() -> Any:
        for f in iter_timed_frames(src):
            h, w = f.image.shape[:2]
            block = max(4, min(h, w) // int(TRAP_PRODUCER.params["block_fraction"]))
            small = cv2.resize(f.image, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
            yield f.time, cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)

    with tempfile.TemporaryDirectory(prefix="study-trap-", dir=settings.tmp_dir) as d:
        out = Path(d) / "trap.mp4"
        a, b = itertools.tee(broken())  # consumed in step by the encoder: one frame buffered, not the clip
        encode_frames((im for _, im in a), out, fps=original.fps or 25.0, timestamps=(t for t, _ in b),
                      settings=EncodeSettings(crf=int(TRAP_PRODUCER.params["crf"])))  # fmt: skip
        info = probe(out, verify=False)
        ref = store.blobs.put_file(out, move=True)
    row = video_variant(info, ref, asset_id=original.asset_id, name="study-trap", parent_id=original.id,
                        producer=producer)  # fmt: skip
    return store_variant(store, row, new_blob=ref.created)[0]


def stimulus_metrics(variant: Variant) -> dict[str, float]:
    """The numbers stored with a variant that the analysis correlates with MOS: the enhance self-check's
    proxy PSNR/SSIM/VMAF of the model that made it (absent for the original and encodes)."""
    proxy = (variant.metrics or {}).get("proxy", {}).get("model", {})
    return {k: float(proxy[k]) for k in METRIC_KEYS if isinstance(proxy.get(k), int | float)}


def _measure(store: Store, stimuli: dict[str, dict[str, Any]], variants: dict[str, Variant]) -> None:
    from framefleet.quality import estimate_quality

    for vid, stim in stimuli.items():
        v = variants[vid]
        assert v.blob_key is not None
        stim["metrics"]["noref"] = round(estimate_quality(store.blobs.open_path(v.blob_key)).vmaf, 3)
    originals = {s["asset"]: s["metrics"].get("noref") for s in stimuli.values() if s["variant"] == ORIGINAL}
    for stim in stimuli.values():
        stim["input_quality"] = originals.get(stim["asset"])


def create_study(store: Store, spec: StudySpec, settings: Settings | None = None) -> CreatedStudy:
    """Check everything, make trap copies, then write the study, its items and rater sessions at once."""
    settings = settings or Settings.from_env()
    _check_spec(spec)
    assets = {a: store.get_asset(a) for a in spec.assets}  # NotFound (exit 2) before anything is written
    chosen = {a: [resolve_variant(asset, label) for label in spec.variants] for a, asset in assets.items()}
    labels = {v.id: label for vs in chosen.values() for v, label in zip(vs, spec.variants, strict=True)}
    for a, vs in chosen.items():
        if len({v.id for v in vs}) != len(vs):
            raise InputError(f"asset {a}: two of --variants name the same variant")
    probe_items = plan_items({a: [v.id for v in vs] for a, vs in chosen.items()}, pairs=spec.pairs, gold=spec.gold,
                             traps={a: (vs[0].id, "?") for a, vs in chosen.items()}, n_traps=spec.traps,
                             seed=spec.seed)  # fmt: skip
    plan_sessions(probe_items, raters_per_item=spec.raters_per_item, items_per_rater=spec.items_per_rater)
    traps: dict[str, tuple[str, str]] = {}
    variants = {v.id: v for vs in chosen.values() for v in vs}
    trap_assets = sorted({it.asset for it in probe_items if it.kind == "trap"})
    for a in trap_assets:
        original = chosen[a][list(spec.variants).index(ORIGINAL)]
        broken = trap_variant(store, original, settings)
        traps[a], variants[broken.id], labels[broken.id] = (original.id, broken.id), broken, TRAP_LABEL
    items = plan_items({a: [v.id for v in vs] for a, vs in chosen.items()}, pairs=spec.pairs, gold=spec.gold,
                       traps=traps, n_traps=spec.traps, seed=spec.seed)  # fmt: skip
    sessions = plan_sessions(items, raters_per_item=spec.raters_per_item, items_per_rater=spec.items_per_rater,
                             seed=spec.seed)  # fmt: skip
    stimuli = {vid: {"asset": v.asset_id, "variant": labels[vid], "name": v.name, "metrics": stimulus_metrics(v),
                     "input_quality": None} for vid, v in variants.items()}  # fmt: skip
    if spec.measure:
        _measure(store, stimuli, variants)
    return _write(store, spec, items, sessions, stimuli)


def _write(
    store: Store,
    spec: StudySpec,
    items: list[PlannedItem],
    sessions: list[list[int]],
    stimuli: dict[str, dict[str, Any]],
) -> CreatedStudy:
    config = {"assets": list(spec.assets), "variants": list(spec.variants), "pairs": spec.pairs, "gold": spec.gold,
              "traps": spec.traps, "raters_per_item": spec.raters_per_item, "items_per_rater": spec.items_per_rater,
              "seed": spec.seed, "stimuli": stimuli}  # fmt: skip
    study = Study(name=spec.name, config=config)
    rows = [StudyItem(position=k, kind=it.kind, asset_id=it.asset, left_variant_id=it.left,
                      right_variant_id=it.right, expected=it.expected) for k, it in enumerate(items)]  # fmt: skip
    from framefleet.store.models import new_id

    for r in rows:
        r.id = new_id()
    raters = [StudyRater(token=secrets.token_urlsafe(18), items=[rows[i].id for i in s]) for s in sessions]
    StudyStore(store).create(study, rows, raters)
    return CreatedStudy(study, rows, raters, stimuli)


# --- export -------------------------------------------------------------------------------------------------------

EXPORT_COLUMNS = ("vote", "study", "rater", "item", "kind", "asset", "left_variant", "left_label", "right_variant",
                  "right_label", "left_score", "right_score", "preference", "expected", "artifacts",
                  "created_at")  # fmt: skip


def vote_records(store: Store, study_id: str) -> list[dict[str, Any]]:
    """Every vote of a study as a flat record (EXPORT_COLUMNS), oldest first."""
    ss = StudyStore(store)
    study = ss.get(study_id)
    stimuli = study.config.get("stimuli", {})
    out = []
    for row in ss.votes(study_id):
        v, it = row.vote, row.item
        out.append({"vote": v.id, "study": study_id, "rater": v.rater_id, "item": it.id, "kind": it.kind,
                    "asset": it.asset_id, "left_variant": it.left_variant_id,
                    "left_label": stimuli.get(it.left_variant_id, {}).get("variant"),
                    "right_variant": it.right_variant_id,
                    "right_label": stimuli.get(it.right_variant_id, {}).get("variant"),
                    "left_score": v.left_score, "right_score": v.right_score, "preference": v.preference,
                    "expected": it.expected, "artifacts": list(v.artifacts),
                    "created_at": v.created_at.isoformat() if v.created_at else None})  # fmt: skip
    return out


def write_votes(store: Store, study_id: str, dst: Path) -> int:
    """Write the study's votes to `dst` (.csv: artifacts joined by ';'; .json: {"study", "votes"}), atomically."""
    suffix = dst.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InputError(f"-o {dst}: give a file ending in .csv or .json")
    if not dst.resolve().parent.is_dir():
        raise InputError(f"-o {dst}: its folder does not exist")
    records = vote_records(store, study_id)
    tmp = dst.with_name(f".{dst.name}.part")
    try:
        with tmp.open("w", newline="") as f:
            if suffix == ".json":
                json.dump({"study": study_id, "votes": records}, f, indent=1)
            else:
                w = csv.DictWriter(f, fieldnames=EXPORT_COLUMNS)
                w.writeheader()
                for r in records:
                    w.writerow({**r, "artifacts": ";".join(r["artifacts"])})
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    return len(records)


# --- analysis -----------------------------------------------------------------------------------------------------


def analysis_inputs(store: Store, study_id: str) -> tuple[list[Any], dict[str, Any]]:
    """(votes, stimuli) as `evaluate.stats.analyse` takes them: stimulus ids are variant ids, raters are rater ids
    (never their tokens)."""
    from framefleet.evaluate.stats import Stimulus, Vote

    study = StudyStore(store).get(study_id)
    stimuli = {vid: Stimulus(id=vid, asset=s["asset"], variant=s["variant"], metrics=dict(s["metrics"]),
                             input_quality=s.get("input_quality"))
               for vid, s in study.config["stimuli"].items()}  # fmt: skip
    votes = [Vote(rater=r["rater"], item=r["item"], left=r["left_variant"], right=r["right_variant"],
                  left_score=r["left_score"], right_score=r["right_score"], preference=r["preference"],
                  artifacts=tuple(r["artifacts"]), kind=r["kind"], expected=r["expected"])
             for r in vote_records(store, study_id)]  # fmt: skip
    return votes, stimuli


__all__ = ["CreatedStudy", "StudySpec", "analysis_inputs", "create_study", "resolve_variant", "trap_variant",
           "vote_records", "write_votes"]  # fmt: skip
