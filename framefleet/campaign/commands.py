"""`framefleet campaign ...`: synth, curate, run, plan, rollout, video, kill, throttle (registered on the CLI)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from framefleet._cli import JsonOpt, app, emit, err, out, run
from framefleet.errors import InputError

campaign_app = typer.Typer(no_args_is_help=True, help="Personal videos for millions of people, on one day.")
app.add_typer(campaign_app, name="campaign")

DirArg = Annotated[Path, typer.Argument(help="Dataset folder (people, friendships, exclusions, photos).")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Refuse the whole dataset on the first bad row.")]


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"--date {value!r}: give the campaign day as YYYY-MM-DD") from None


@campaign_app.command("synth")
def synth_cmd(
    people: Annotated[int, typer.Option("--people", min=1, help="How many people.")],
    out_dir: Annotated[Path, typer.Option("--out", help="An empty or new folder.")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """A realistic synthetic dataset: power-law friendships, real zones, exclusions, photos from real pictures."""
    from framefleet.campaign.synth import synthesize

    summary = run(as_json, lambda: synthesize(out_dir, people, seed=seed, progress=not as_json))
    emit(summary.to_dict(), as_json, lambda: out.print(summary.to_dict()))


@campaign_app.command("curate")
def curate_cmd(
    folder: DirArg,
    person: Annotated[list[str] | None, typer.Option("--person", help="Only this person (repeatable).")] = None,
    threads: Annotated[int, typer.Option(min=1, help="Threads for face detection and hashing.")] = 2,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Choose each person's photos: exclusions, close-ups, a group photo last, no near-duplicates."""
    from framefleet.campaign.curate import curate
    from framefleet.campaign.dataset import load_dataset
    from framefleet.campaign.vision import analyse_photos

    def body() -> dict[str, Any]:
        ds = load_dataset(folder, strict=strict)
        ids = person or [p.id for p in ds.people]
        unknown = [i for i in ids if ds.person(i) is None]
        if unknown:
            raise InputError(f"--person: unknown {', '.join(map(repr, unknown))} (not in the dataset)")
        wanted = {p.id: p for i in ids for p in ds.photos_of(i)}
        seen = analyse_photos(ds, wanted.values(), threads=threads)
        picks = [curate(i, ds, faces=seen.faces, hashes=seen.hashes, unreadable=seen.unreadable) for i in ids]
        return {"recipients": [c.to_dict() for c in picks], "problems": list(ds.problems)}

    result = run(as_json, body)

    def show() -> None:
        for r in result["recipients"]:
            shown = ", ".join(f"{p['id']} ({p['role']})" for p in r["photos"])
            out.print(f"{r['id']}: {'skipped: ' + r['skipped'] if r['skipped'] else shown}")

    emit(result, as_json, show)


@campaign_app.command("run")
def run_cmd(
    folder: DirArg,
    campaign: Annotated[str, typer.Option("--campaign", help="Campaign name (the key of its videos).")],
    day: Annotated[str, typer.Option("--date", help="The campaign day, YYYY-MM-DD (recipients' local date).")],
    limit: Annotated[int | None, typer.Option(min=1, help="Render at most this many recipients now.")] = None,
    recipients: Annotated[
        Path | None, typer.Option("--recipients", help="Only these people: a file of ids, one per line.")
    ] = None,
    ray_address: Annotated[str | None, typer.Option(help="Join this Ray cluster (host:port).")] = None,
    local: Annotated[bool, typer.Option("--local", help="Threads in this process instead of Ray.")] = False,
    workers: Annotated[int | None, typer.Option(min=1, help="Workers (default: one per CPU).")] = None,
    rate: Annotated[float | None, typer.Option(min=0.001, help="Renders started per second, at most.")] = None,
    music: Annotated[Path | None, typer.Option(help="Music for every video (faded in and out).")] = None,
    size: Annotated[
        str, typer.Option(help="Video size WxH (the product is 1280x720; smaller for previews).")
    ] = "1280x720",
    fps: Annotated[int, typer.Option(min=1, max=60, help="Frames per second.")] = 30,
    chaos: Annotated[
        list[str] | None,
        typer.Option(help="Drill: inject a fault into worker N, e.g. '1:fail=1.0' or '0:slow=3' (repeatable)."),
    ] = None,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Render every recipient not yet done; resumable, throttled, with a kill switch and a blocklist."""
    from framefleet.campaign.runner import RunConfig
    from framefleet.campaign.work import RenderOptions

    def body() -> dict[str, Any]:
        cfg = RunConfig(campaign, _day(day), limit=limit, rate=rate, only=_ids(recipients))
        opts = RenderOptions(music=str(music) if music else None, size=_size(size), fps=fps)
        faults = _chaos(chaos or [])
        return _run(folder, cfg, opts, ray_address, local, workers, strict, not as_json, music, faults)

    summary = run(as_json, body)

    def show() -> None:
        t = Table(title=f"campaign {campaign}", title_justify="left")
        t.add_column("what")
        t.add_column("count", justify="right")
        t.add_row("rendered", str(summary["rendered"]))
        t.add_row("already done", str(summary["already_done"]))
        for reason, n in summary["skipped"].items():
            t.add_row(f"skipped: {reason}", str(n))
        t.add_row("failed", str(summary["failed"]))
        for w, why in summary["blocklisted"].items():
            t.add_row(f"blocklisted {w}", why)
        t.add_row("seconds", str(summary["seconds"]))
        out.print(t)

    emit(summary, as_json, show)


def _ids(path: Path | None) -> tuple[str, ...] | None:
    if path is None:
        return None
    try:
        ids = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"--recipients {path}: cannot read it ({e}); give a text file of ids, one per line") from None
    if not ids:
        raise InputError(f"--recipients {path}: no ids in it")
    return ids


def _chaos(values: list[str]) -> dict[int, Any]:
    """'1:fail=0.5,slow=2' → {1: Fault(fail_rate=0.5, slow_s=2)}: fault drills for the blocklist."""
    from framefleet.campaign.work import Fault

    out = {}
    for value in values:
        worker, _, spec = value.partition(":")
        try:
            kw = {k.strip(): float(v) for k, v in (part.split("=") for part in spec.split(",") if part)}
            out[int(worker)] = Fault(slow_s=kw.pop("slow", 0.0), fail_rate=kw.pop("fail", 0.0))
            if kw:
                raise ValueError(f"unknown {', '.join(kw)}")
        except ValueError as e:
            raise InputError(f"--chaos {value!r}: give WORKER:fail=RATE,slow=SECONDS, e.g. 1:fail=1.0 ({e})") from None
    return out


def _size(value: str) -> tuple[int, int]:
    w, sep, h = value.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and int(w) % 2 == 0 and int(h) % 2 == 0 and min(int(w), int(h)) >= 16):
        raise InputError(f"--size {value!r}: give WIDTHxHEIGHT with even numbers >= 16, e.g. 1280x720")
    return int(w), int(h)


def _run(folder: Path, cfg: Any, opts: Any, address: str | None, local: bool, workers: int | None, strict: bool,
         show: bool, music: Path | None, faults: dict[int, Any]) -> dict[str, Any]:  # fmt: skip
    from framefleet.campaign.dataset import load_dataset
    from framefleet.campaign.pools import LocalPool
    from framefleet.campaign.runner import run_campaign
    from framefleet.campaign.work import RecipientRenderer
    from framefleet.config import Settings
    from framefleet.store import Store
    from framefleet.store.campaigns import CampaignStore

    if music is not None and not Path(music).is_file():
        raise InputError(f"--music {music}: no such file")
    ds = load_dataset(folder, strict=strict)  # fails early, before any worker starts
    unknown = [r for r in cfg.only or () if ds.person(r) is None]
    if unknown:
        raise InputError(f"--recipients: {len(unknown)} ids not in the dataset, e.g. {', '.join(unknown[:5])}")
    settings = Settings.from_env()
    staging = Path(settings.tmp_dir).resolve() / "campaign-staging"
    for stale in (staging / cfg.campaign).glob(".*.tmp.mp4"):  # a killed run's half-written renders
        stale.unlink(missing_ok=True)
    store = Store.open(settings)
    pool: Any
    if local or (workers == 1 and address is None):
        pool = LocalPool(workers or 1, lambda w: RecipientRenderer(
            str(folder), str(staging), cfg.campaign, opts, w, faults.get(int(w.rsplit("-", 1)[1]))))  # fmt: skip
    else:
        from framefleet.campaign.ray_pool import RayPool

        pool = RayPool(str(folder.resolve()), str(staging), cfg.campaign, opts, address=address, workers=workers,
                       faults=faults)  # fmt: skip
    try:
        with _counters(show) as progress:
            return run_campaign(ds, CampaignStore(store), pool, cfg, on_progress=progress).to_dict()
    finally:
        pool.close()
        store.close()


@contextmanager
def _counters(enabled: bool) -> Iterator[Callable[[Any, int, int], None] | None]:
    """One progress bar on stderr whose text carries the live counters (for a person at a terminal)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    cols = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    with Progress(*cols, console=err, transient=True) as bar:
        task = bar.add_task("campaign", total=None)

        def update(s: Any, done: int, total: int) -> None:
            text = (f"rendered {s.rendered}  skipped {sum(s.skipped.values())}  failed {s.failed}  "
                    f"blocklisted {len(s.blocklisted)}")  # fmt: skip
            bar.update(task, completed=done, total=total, description=text)

        yield update


@campaign_app.command("plan")
def plan_cmd(
    recipients: Annotated[float, typer.Option(help="How many people get a video (3e8 works).")],
    deadline_hours: Annotated[float, typer.Option(help="Hours from start to the first zone's opening.")],
    folder: Annotated[Path | None, typer.Option("--dataset", help="Measure on this dataset (default: synth).")] = None,
    samples: Annotated[int, typer.Option(min=1, help="Real renders to measure.")] = 4,
    cores: Annotated[int, typer.Option(help="Cores per machine.")] = 32,
    as_json: JsonOpt = False,
) -> None:
    """Measure a video's cost with real renders, then size the cluster, storage and egress."""
    from framefleet.campaign.capacity import Assumptions, measure, plan

    def body() -> dict[str, Any]:
        if not all(math.isfinite(v) and v > 0 for v in (recipients, deadline_hours)):
            raise InputError("--recipients and --deadline-hours must be finite numbers > 0")
        if folder is not None and not folder.is_dir():
            raise InputError(f"--dataset {folder}: not a folder")
        return plan(recipients, deadline_hours, measure(folder, samples), Assumptions(cores))

    result = run(as_json, body)

    def show() -> None:
        t = Table(title=f"capacity plan: {recipients:.3g} recipients in {deadline_hours:g} h", title_justify="left")
        t.add_column("what")
        t.add_column("value", justify="right")
        for k in ("machines", "cores", "workers_per_machine", "cpu_hours", "wall_hours", "storage_tb", "egress_tb",
                  "store_writes_per_s", "renders_per_s"):  # fmt: skip
            t.add_row(k, str(result[k]))
        for k, v in result["per_video"].items():
            t.add_row(f"per video: {k}", f"{v:.3g}" if isinstance(v, float) else str(v))
        for k, v in result["assumptions"].items():
            t.add_row(f"assumed: {k}", str(v))
        out.print(t)

    emit(result, as_json, show)


@campaign_app.command("rollout")
def rollout_cmd(
    folder: DirArg,
    day: Annotated[str, typer.Option("--date", help="The campaign day, YYYY-MM-DD.")],
    ready_hours: Annotated[float, typer.Option(help="Renders ready this many hours before the first opening.")] = 12,
    capacity: Annotated[float | None, typer.Option(help="Deliveries per hour per region (default: from load).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the planned load curve as a PNG.")] = None,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Release waves per time zone: every video ready by local midnight, added load off-peak, under capacity."""
    from framefleet.campaign.dataset import load_dataset
    from framefleet.campaign.rollout import default_regions, local_day_start, plan_rollout, plot_plan, region_of

    def body() -> dict[str, Any]:
        ds = load_dataset(folder, strict=strict)
        d = _day(day)
        zones: dict[str, int] = {}
        for p in ds.people:
            zones[p.tz] = zones.get(p.tz, 0) + 1
        first = min(local_day_start(d, z) for z in zones).astimezone(UTC)
        regions = default_regions(zones, capacity)
        plan = plan_rollout(zones, {z: region_of(z) for z in zones}, regions, d,
                            ready_at=first - timedelta(hours=ready_hours))  # fmt: skip
        if plot is not None:
            plot_plan(plan, str(plot))
        return plan.to_dict() | {"plot": str(plot) if plot else None}

    result = run(as_json, body)
    emit(result, as_json, lambda: out.print({k: v for k, v in result.items() if k != "waves"}))


@campaign_app.command("video")
def video_cmd(
    campaign: Annotated[str, typer.Argument(help="Campaign name.")],
    recipient: Annotated[str, typer.Argument(help="Person id.")],
    at: Annotated[str | None, typer.Option("--at", help="Pretend it is this instant (ISO, with offset).")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Copy the video here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A recipient's video, only from their local campaign day on (exit 4 with the opening time before)."""
    from framefleet.campaign.delivery import deliver
    from framefleet.store import Store

    def body() -> dict[str, Any]:
        now = datetime.now(UTC) if at is None else _instant(at)
        store = Store.open()
        try:
            got = deliver(store, campaign, recipient, now)
            if out_file is not None:
                import shutil

                shutil.copyfile(got.path, out_file)
            return got.to_dict() | {"out": str(out_file) if out_file else None}
        finally:
            store.close()

    result = run(as_json, body)
    emit(result, as_json, lambda: out.print(result))


def _instant(value: str) -> datetime:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"--at {value!r}: give an ISO 8601 instant, e.g. 2027-02-04T00:30:00+05:30") from None
    if t.tzinfo is None:
        raise InputError(f"--at {value!r}: add a UTC offset (e.g. Z or +05:30); a bare time is ambiguous")
    return t


@campaign_app.command("kill")
def kill_cmd(
    campaign: Annotated[str, typer.Argument(help="Campaign name.")],
    resume: Annotated[bool, typer.Option("--resume", help="Lift the kill switch instead.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The kill switch: running renderers start no new work within seconds."""
    _admin(campaign, as_json, lambda cs: cs.set_killed(campaign, not resume), {"killed": not resume})


@campaign_app.command("throttle")
def throttle_cmd(
    campaign: Annotated[str, typer.Argument(help="Campaign name.")],
    delivery: Annotated[float, typer.Option(help="Share of recipients served, 0..1 (0 pulls the product).")],
    as_json: JsonOpt = False,
) -> None:
    """The delivery throttle: serve the videos to this share of recipients (a stable hash picks who)."""
    _admin(campaign, as_json, lambda cs: cs.set_delivery_share(campaign, delivery), {"delivery_share": delivery})


def _admin(campaign: str, as_json: bool, change: Any, payload: dict[str, Any]) -> None:
    from framefleet.store import Store
    from framefleet.store.campaigns import CampaignStore

    def body() -> None:
        store = Store.open()
        try:
            change(CampaignStore(store))
        finally:
            store.close()

    run(as_json, body)
    emit({"campaign": campaign, **payload}, as_json, lambda: out.print(f"campaign {campaign}: {payload}"))
