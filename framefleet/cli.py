"""The `framefleet` command.

    framefleet ingest clip.mp4 --json
    framefleet assets list --json
    framefleet assets show ASSET_ID --json
    framefleet encode ASSET_ID --ladder 720,480 --json
    framefleet enhance clip.mp4 --scale 2 --json
    framefleet quality ref.mp4 dist.mp4 --json
    framefleet demo

Every command that reports something takes `--json` and then prints exactly one JSON object on stdout
(errors too: `{"error": {"type": ..., "message": ...}}`). Exit codes: 0 ok, 2 bad input, 1 anything else.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from framefleet._cli import JsonOpt, app, emit, out, progress_bars, run
from framefleet.config import Settings, parse_ladder
from framefleet.errors import InputError
from framefleet.media.encode import ENCODERS, EncodeSettings
from framefleet.media.ladder import Rung
from framefleet.serve.balance import POLICIES
from framefleet.store import Store
from framefleet.store.views import asset_dict

if TYPE_CHECKING:
    from framefleet.fleet.local import LocalFleet

assets_app = typer.Typer(no_args_is_help=True, help="List and inspect assets.")
app.add_typer(assets_app, name="assets")


def variants_table(asset: dict[str, Any], timings: dict[str, float] | None = None) -> Table:
    t = Table(title=f"asset {asset['id']} — {asset['source_name']} ({asset['kind']})", title_justify="left")
    for col in ("variant", "size", "codecs", "fps", "frames", "duration", "bitrate", "bytes"):
        t.add_column(col, justify="left" if col in ("variant", "codecs") else "right")
    if timings is not None:
        t.add_column("encode", justify="right")
    for v in asset["variants"]:
        codecs = "+".join(c for c in (v["video_codec"], v["audio_codec"]) if c)
        row = [
            v["name"],
            f"{v['width']}×{v['height']}",
            codecs,
            f"{v['fps']:.2f}" if v["fps"] else "-",
            str(v["frame_count"]),
            f"{v['duration']:.2f} s" if v["duration"] else "-",
            f"{v['bitrate'] / 1000:.0f} kb/s" if v["bitrate"] else "-",
            f"{v['size_bytes']:,}",
        ]
        if timings is not None:
            secs = timings.get(v["name"].split("-", 1)[-1])
            row.append(f"{secs:.2f} s" if secs is not None else "")
        t.add_row(*row)
    return t


@contextmanager
def rung_progress(enabled: bool) -> Iterator[Callable[[Rung, int, int], None] | None]:
    """A rich progress bar per rung on stderr, only for a person at a terminal."""
    with progress_bars(enabled) as update:
        yield None if update is None else (lambda rung, done, total: update(f"encode {rung.name}", done, total))


@app.command()
def ingest(path: Annotated[str, typer.Argument(help="Video or image file.")], as_json: JsonOpt = False) -> None:
    """Validate a video or image and store it as a new asset with its original variant."""
    from framefleet.tasks.ingest import ingest as do_ingest

    def body() -> None:
        settings = Settings.from_env()
        store = Store.open(settings)
        result = do_ingest(path, store, settings=settings)
        a = asset_dict(result.asset)
        emit({"asset": a, "created": result.created}, as_json, lambda: out.print(variants_table(a)))

    run(as_json, body)


@assets_app.command("list")
def assets_list(as_json: JsonOpt = False) -> None:
    """List assets."""

    def body() -> None:
        assets = [asset_dict(a) for a in Store.open().list_assets()]

        def render() -> None:
            t = Table("id", "kind", "source", "variants", "created")
            for a in assets:
                t.add_row(a["id"], a["kind"], a["source_name"], str(len(a["variants"])), a["created_at"])
            out.print(t)

        emit({"assets": assets}, as_json, render)

    run(as_json, body)


@assets_app.command("show")
def assets_show(asset_id: str, as_json: JsonOpt = False) -> None:
    """Show one asset and its variants."""

    def body() -> None:
        a = asset_dict(Store.open().get_asset(asset_id))
        emit({"asset": a}, as_json, lambda: out.print(variants_table(a)))

    run(as_json, body)


@app.command()
def encode(
    asset_id: str,
    ladder: Annotated[str | None, typer.Option(help="Rung heights (short side), e.g. 720,480.")] = None,
    codec: Annotated[str, typer.Option(help=f"Video codec: {', '.join(ENCODERS)}.")] = "h264",
    crf: Annotated[int, typer.Option(min=0, max=51, help="Constant-quality factor (x264 scale).")] = 23,
    as_json: JsonOpt = False,
) -> None:
    """Encode an ABR ladder from an asset's original: one new variant per rung."""
    from framefleet.tasks.encode import encode_ladder

    def body() -> None:
        settings = Settings.from_env()
        rungs = parse_ladder(ladder) if ladder is not None else settings.ladder
        store = Store.open(settings)
        with rung_progress(not as_json) as progress:
            result = encode_ladder(
                store,
                asset_id,
                rungs=rungs,
                encode=EncodeSettings(codec=codec, crf=crf),
                settings=settings,
                progress=progress,
            )
        a = asset_dict(store.get_asset(asset_id))
        payload = {
            "asset": a,
            "encoded": [v.id for v, c in zip(result.variants, result.created, strict=True) if c],
            "existing": [v.id for v, c in zip(result.variants, result.created, strict=True) if not c],
            "skipped_rungs": result.skipped_rungs,
        }
        emit(payload, as_json, lambda: out.print(variants_table(a, result.seconds)))

    run(as_json, body)


RayAddressOpt = Annotated[
    str | None,
    typer.Option(help="host:port of a Ray head: workers become Ray actors placed by node label framefleet.io/region."),
]


def make_fleet(regions: str, policy: str, seed: int | None, ray_address: str | None) -> LocalFleet:
    from pathlib import Path

    from framefleet.fleet.local import LocalFleet

    if ray_address is None:
        return LocalFleet(Path(regions), policy=policy, seed=seed)
    from framefleet.fleet.ray_fleet import RayFleet

    return RayFleet(Path(regions), policy=policy, seed=seed, address=ray_address)


@app.command()
def serve(
    regions: Annotated[str, typer.Option("--regions", help="Fleet TOML (see examples/regions-3.toml).")],
    policy: Annotated[str, typer.Option(help="traffic | local-only | global")] = "traffic",
    ray_address: RayAddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a multi-region fleet (gateway + one worker per slot) until Ctrl-C: local processes, or Ray actors.

    framefleet serve --regions examples/regions-3.toml [--ray-address 127.0.0.1:6390]
    """
    import time

    def body() -> None:
        if policy not in POLICIES:
            raise InputError(f"--policy {policy!r}: use one of {', '.join(POLICIES)}")
        with make_fleet(regions, policy, None, ray_address) as fleet:
            info = {"gateway": fleet.url, "policy": policy,
                    "workers": {r: [p.url for p in ps] for r, ps in fleet.workers.items()}}  # fmt: skip
            emit(info, as_json, lambda: out.print(f"gateway {fleet.url} ({policy}); workers: {info['workers']}"))
            sys.stdout.flush()
            while True:
                time.sleep(3600)

    run(as_json, body)


@app.command()
def loadtest(
    regions: Annotated[str, typer.Option("--regions", help="Fleet TOML: regions, capacities, RTTs.")],
    rate: Annotated[float, typer.Option(help="Total offered requests/s, split by region capacity.")],
    duration: Annotated[float, typer.Option(help="Seconds of arrivals.")] = 30.0,
    skew: Annotated[list[str] | None, typer.Option(help="region=factor: multiply one region's rate.")] = None,
    policy: Annotated[str | None, typer.Option(help="traffic | local-only | global (when starting the fleet).")] = None,
    retry: Annotated[str, typer.Option(help="jittered (budgeted, full jitter) | naive (immediate).")] = "jittered",
    url: Annotated[str | None, typer.Option(help="An already running gateway; default: start a local fleet.")] = None,
    ray_address: RayAddressOpt = None,
    api_key: Annotated[str, typer.Option(help="API key for the gateway.")] = "dev-key",
    seed: Annotated[int, typer.Option(help="Seed for arrivals and jitter.")] = 0,
    plot: Annotated[str | None, typer.Option(help="Write a PNG of success rate and per-region load.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Open-loop Poisson load through the real client; report success, goodput, attempts, latency."""
    import asyncio
    from contextlib import nullcontext

    from framefleet.serve.config import load_fleet
    from framefleet.serve.loadtest import parse_skew, plot_report, run_load

    def body() -> None:
        config = load_fleet(regions)
        sk = parse_skew(skew, config.region_names)
        if duration <= 0:
            raise InputError(f"--duration must be positive, got {duration}")
        if url is not None and (policy is not None or ray_address is not None):
            raise InputError(
                "--policy and --ray-address apply only when loadtest starts the fleet; the gateway at --url has its own"
            )
        if (policy or "traffic") not in POLICIES:
            raise InputError(f"--policy {policy!r}: use one of {', '.join(POLICIES)}")
        fleet = make_fleet(regions, policy or "traffic", seed, ray_address) if url is None else None
        with fleet if fleet is not None else nullcontext():
            target = url or (fleet.url if fleet is not None else "")
            report = asyncio.run(
                run_load(
                    target, config, rate=rate, duration_s=duration, skew=sk, retry=retry, api_key=api_key, seed=seed
                )
            )
        if plot:
            plot_report(report, config, plot, f"{policy or 'traffic'} / {retry}: offered {report.offered_rps} rps")
        payload = report.to_dict() | {"policy": policy or "traffic", "retry": retry}

        def render() -> None:
            t = Table(title="load test", title_justify="left")
            t.add_column("metric")
            t.add_column("value", justify="right")
            for k in ("requests", "succeeded", "success_rate", "goodput_rps", "capacity_rps", "offered_rps",
                      "attempts_per_request", "cross_region_share", "launch_lag_ms_p99"):  # fmt: skip
                t.add_row(k, str(payload[k]))
            t.add_row("latency_ms p50/p95/p99", "/".join(str(v) for v in payload["latency_ms"].values()))
            out.print(t)

        emit(payload, as_json, render)

    run(as_json, body)


@app.command()
def demo(as_json: JsonOpt = False) -> None:
    """The main job on embedded defaults: ingest real sample clips, build their ABR ladders, split/join."""
    from framefleet.demo import run_demo

    run(as_json, lambda: run_demo(as_json=as_json, console=out))


def main() -> None:
    import framefleet.animate_cli
    import framefleet.enhance_cli
    import framefleet.sim.commands  # noqa: F401  (registers simulate and capacity)

    app()


if __name__ == "__main__":
    main()
