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
import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framefleet._fs import scratch_file
from framefleet.config import Settings
from framefleet.errors import FramefleetError, InputError
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


@dataclass(frozen=True)
class TrapCopy:
    """A trap copy encoded into scratch space, not yet stored: its row id is chosen now (items refer to it) and
    its blob and row are written with the study, in `_write`."""

    id: str
    original: Variant
    producer: Producer
    path: Path
    info: Any  # media.MediaInfo

    def placeholder(self) -> Variant:
        """A detached row carrying what planning and the stimulus table read (never added to a session)."""
        return Variant(id=self.id, asset_id=self.original.asset_id, name="study-trap", metrics={})


class TrapRace(FramefleetError):
    """Another study creation stored the same trap copy while this one ran; its copy is reused on a retry."""


def trap_producer(original: Variant) -> Producer:
    return Producer(TRAP_PRODUCER.model, TRAP_PRODUCER.version, {**TRAP_PRODUCER.params, "parent": original.id})


def encode_trap(store: Store, original: Variant, folder: Path) -> TrapCopy:
    """A visibly defective copy of `original` (coarse blocks, heavy compression) encoded into `folder`."""
    import cv2

    from framefleet.media import EncodeSettings, encode_frames, iter_timed_frames, probe
    from framefleet.store.models import new_id

    assert original.blob_key is not None
    src = store.blobs.open_path(original.blob_key)

    def broken() -> Any:
        for f in iter_timed_frames(src):
            h, w = f.image.shape[:2]
            block = max(4, min(h, w) // int(TRAP_PRODUCER.params["block_fraction"]))
            small = cv2.resize(f.image, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
            yield f.time, cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)

    vid = new_id()
    out = folder / f"trap-{vid}.mp4"
    a, b = itertools.tee(broken())  # consumed in step by the encoder: one frame buffered, not the clip
    encode_frames((im for _, im in a), out, fps=original.fps or 25.0, timestamps=(t for t, _ in b),
                  settings=EncodeSettings(crf=int(TRAP_PRODUCER.params["crf"])))  # fmt: skip
    return TrapCopy(vid, original, trap_producer(original), out, probe(out, verify=False))


def existing_trap(store: Store, original: Variant) -> Variant | None:
    """The trap copy an earlier study stored for `original` (producer `study-trap`), if any."""
    found = store.find_variant(original.asset_id, trap_producer(original))
    return found if found is not None and found.status == "ready" and found.blob_key else None


def trap_variant(store: Store, original: Variant, settings: Settings) -> Variant:
    """The stored trap copy of `original`, made and stored now if no earlier study made it."""
    from framefleet.tasks._variants import store_variant

    if (found := existing_trap(store, original)) is not None:
        return found
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="study-trap-", dir=settings.tmp_dir) as d:
        copy = encode_trap(store, original, Path(d))
        ref = store.blobs.put_file(copy.path, move=True)
    return store_variant(store, _trap_row(copy, ref), new_blob=ref.created)[0]


def _trap_row(copy: TrapCopy, ref: Any) -> Variant:
    from framefleet.tasks._variants import video_variant

    row = video_variant(copy.info, ref, asset_id=copy.original.asset_id, name="study-trap",
                        parent_id=copy.original.id, producer=copy.producer)  # fmt: skip
    row.id = copy.id
    return row


def stimulus_metrics(variant: Variant) -> dict[str, float]:
    """The numbers stored with a variant that the analysis correlates with MOS: the enhance self-check's
    proxy PSNR/SSIM/VMAF of the model that made it (absent for the original and encodes)."""
    proxy = (variant.metrics or {}).get("proxy", {}).get("model", {})
    return {k: float(proxy[k]) for k in METRIC_KEYS if isinstance(proxy.get(k), int | float)}


def _measure(
    store: Store, stimuli: dict[str, dict[str, Any]], variants: dict[str, Variant], files: dict[str, Path]
) -> None:
    from framefleet.quality import estimate_quality

    for vid, stim in stimuli.items():
        v = variants[vid]
        path = files.get(vid) or store.blobs.open_path(v.blob_key or "")
        stim["metrics"]["noref"] = round(estimate_quality(path).vmaf, 3)
    originals = {s["asset"]: s["metrics"].get("noref") for s in stimuli.values() if s["variant"] == ORIGINAL}
    for stim in stimuli.values():
        stim["input_quality"] = originals.get(stim["asset"])


def create_study(store: Store, spec: StudySpec, settings: Settings | None = None) -> CreatedStudy:
    """Check everything, make trap copies, then write the study, its items, rater sessions and new trap copies
    at once. A failure at any step leaves no row, no blob and no scratch file behind."""
    settings = settings or Settings.from_env()
    _check_spec(spec)
    try:
        return _create(store, spec, settings)
    except TrapRace:  # a concurrent creation stored the same trap copy first: this time it is found and reused
        return _create(store, spec, settings)


def _create(store: Store, spec: StudySpec, settings: Settings) -> CreatedStudy:
    assets = {a: store.get_asset(a) for a in spec.assets}  # NotFound (exit 2) before anything is written
    chosen = {a: [resolve_variant(asset, label) for label in spec.variants] for a, asset in assets.items()}
    labels = {v.id: label for vs in chosen.values() for v, label in zip(vs, spec.variants, strict=True)}
    for a, vs in chosen.items():
        if len({v.id for v in vs}) != len(vs):
            raise InputError(f"asset {a}: two of --variants name the same variant")
    ids = {a: [v.id for v in vs] for a, vs in chosen.items()}
    probe_items = plan_items(ids, pairs=spec.pairs, gold=spec.gold, traps={a: (vs[0], "?") for a, vs in ids.items()},
                             n_traps=spec.traps, seed=spec.seed)  # fmt: skip
    plan_sessions(probe_items, raters_per_item=spec.raters_per_item, items_per_rater=spec.items_per_rater)
    variants = {v.id: v for vs in chosen.values() for v in vs}
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="study-", dir=settings.tmp_dir) as scratch:
        traps: dict[str, tuple[str, str]] = {}
        copies: list[TrapCopy] = []
        for a in sorted({it.asset for it in probe_items if it.kind == "trap"}):
            original = chosen[a][list(spec.variants).index(ORIGINAL)]
            broken = existing_trap(store, original)
            if broken is None:
                copies.append(encode_trap(store, original, Path(scratch)))
                broken = copies[-1].placeholder()
            traps[a], variants[broken.id], labels[broken.id] = (original.id, broken.id), broken, TRAP_LABEL
        items = plan_items(ids, pairs=spec.pairs, gold=spec.gold, traps=traps, n_traps=spec.traps, seed=spec.seed)
        sessions = plan_sessions(items, raters_per_item=spec.raters_per_item, items_per_rater=spec.items_per_rater,
                                 seed=spec.seed)  # fmt: skip
        stimuli = {vid: {"asset": v.asset_id, "variant": labels[vid], "name": v.name, "metrics": stimulus_metrics(v),
                         "input_quality": None} for vid, v in variants.items()}  # fmt: skip
        if spec.measure:
            _measure(store, stimuli, variants, {c.id: c.path for c in copies})
        return _write(store, spec, items, sessions, stimuli, copies)


def _write(
    store: Store,
    spec: StudySpec,
    items: list[PlannedItem],
    sessions: list[list[int]],
    stimuli: dict[str, dict[str, Any]],
    copies: Sequence[TrapCopy] = (),
) -> CreatedStudy:
    """Store the new trap copies' blobs, then their rows with the study, items and rater sessions in one
    transaction; if that fails, the blobs stored here are removed again."""
    from sqlalchemy.exc import IntegrityError

    from framefleet.store.models import new_id

    config = {"assets": list(spec.assets), "variants": list(spec.variants), "pairs": spec.pairs, "gold": spec.gold,
              "traps": spec.traps, "raters_per_item": spec.raters_per_item, "items_per_rater": spec.items_per_rater,
              "seed": spec.seed, "stimuli": stimuli}  # fmt: skip
    study = Study(name=spec.name, config=config)
    rows = [StudyItem(id=new_id(), position=k, kind=it.kind, asset_id=it.asset, left_variant_id=it.left,
                      right_variant_id=it.right, expected=it.expected) for k, it in enumerate(items)]  # fmt: skip
    raters = [StudyRater(token=secrets.token_urlsafe(18), items=[rows[i].id for i in s]) for s in sessions]
    stored: list[str] = []  # blob keys this call created
    try:
        trap_rows = []
        for copy in copies:
            ref = store.blobs.put_file(copy.path, move=True)
            if ref.created:
                stored.append(ref.key)
            trap_rows.append(_trap_row(copy, ref))
        StudyStore(store).create(study, rows, raters, variants=trap_rows)
    except BaseException as e:
        _drop_unused_blobs(store, stored)
        if isinstance(e, IntegrityError) and _stored_meanwhile(store, copies):
            raise TrapRace("another study stored the same trap copy at the same time; run it again") from e
        raise
    return CreatedStudy(study, rows, raters, stimuli)


def _drop_unused_blobs(store: Store, keys: Sequence[str]) -> None:
    """Delete the blobs this creation stored, unless a variant row uses one (a concurrent study may have stored
    identical bytes and kept them). Called while an error propagates: a failure here must not mask it."""
    from sqlalchemy import select

    for key in keys:
        try:
            with store.session() as s:
                used = s.scalars(select(Variant.id).where(Variant.blob_key == key).limit(1)).first()
            if used is None:
                store.blobs.delete(key)
        except Exception:  # the database is gone too: keep the blob rather than risk another variant's content
            continue


def _stored_meanwhile(store: Store, copies: Sequence[TrapCopy]) -> bool:
    try:
        return any(existing_trap(store, c.original) for c in copies)
    except Exception:
        return False


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
    with scratch_file(dst.resolve().parent, suffix) as tmp:
        with tmp.open("w", newline="") as f:
            if suffix == ".json":
                json.dump({"study": study_id, "votes": records}, f, indent=1)
            else:
                w = csv.DictWriter(f, fieldnames=EXPORT_COLUMNS)
                w.writeheader()
                for r in records:
                    w.writerow({**r, "artifacts": ";".join(r["artifacts"])})
        os.replace(tmp, dst)
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


__all__ = ["CreatedStudy", "StudySpec", "TrapCopy", "analysis_inputs", "create_study", "encode_trap", "existing_trap",
           "resolve_variant", "trap_variant", "vote_records", "write_votes"]  # fmt: skip
