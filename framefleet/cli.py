"""The `framefleet` command.

    framefleet ingest clip.mp4 --json
    framefleet assets list --json
    framefleet assets show ASSET_ID --json
    framefleet assets export VARIANT_ID -o out.mp4
    framefleet encode ASSET_ID --ladder 720,480 --json
    framefleet enhance clip.mp4 --scale 2 --json
    framefleet quality ref.mp4 dist.mp4 --json
    framefleet demo

Every command that reports something takes `--json` and then prints exactly one JSON object on stdout
(errors too: `{"error": {"type": ..., "message": ...}}`). Exit codes: 0 ok, 2 bad input, 1 anything else.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from framefleet._cli import JsonOpt, app, emit, out, run, rung_progress, skipped_rungs_note, variants_table
from framefleet.config import Settings, parse_ladder
from framefleet.errors import InputError
from framefleet.media.encode import ENCODERS, EncodeSettings
from framefleet.serve.balance import POLICIES
from framefleet.store import Store
from framefleet.store.views import asset_dict, variant_dict

if TYPE_CHECKING:
    from framefleet.fleet.local import LocalFleet

assets_app = typer.Typer(no_args_is_help=True, help="List and inspect assets.")
app.add_typer(assets_app, name="assets")


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


@assets_app.command("export")
def assets_export(
    variant_id: Annotated[str, typer.Argument(help="The variant's id (`framefleet assets show ASSET_ID --json`).")],
    output: Annotated[str, typer.Option("-o", "--output", help="The file to write (replaced if it exists).")],
    as_json: JsonOpt = False,
) -> None:
    """Write a stored variant (the original, a rendition, an enhanced or animated video) to a file."""
    from framefleet.tasks.export import export_variant

    def body() -> None:
        v, path = export_variant(Store.open(), variant_id, output)
        payload = {"variant": variant_dict(v), "output": str(path), "bytes": path.stat().st_size}
        line = f"{v.name} ({v.width}×{v.height}) → {path}  ({payload['bytes']:,} bytes)"
        emit(payload, as_json, lambda: out.print(line))

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
    from framefleet.tasks.ingest import ORIGINAL

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
        original = next(v for v in a["variants"] if v["name"] == ORIGINAL)
        note = skipped_rungs_note(rungs, result.skipped_rungs, min(original["width"], original["height"]))

        def render() -> None:
            out.print(variants_table(a, result.seconds))
            if note:
                out.print(note)

        emit(payload, as_json, render)

    run(as_json, body)


RayAddressOpt = Annotated[
    str | None,
    typer.Option(help="host:port of a Ray head: workers become Ray actors placed by node label framefleet.io/region."),
]


def make_fleet(
    regions: str,
    policy: str,
    seed: int | None,
    ray_address: str | None,
    host: str = "127.0.0.1",
    port: int | None = None,
) -> LocalFleet:
    from pathlib import Path

    from framefleet.fleet.local import LocalFleet

    if ray_address is None:
        return LocalFleet(Path(regions), policy=policy, seed=seed, host=host, port=port)
    from framefleet.fleet.ray_fleet import RayFleet

    return RayFleet(Path(regions), policy=policy, seed=seed, address=ray_address, host=host, port=port)


@app.command()
def serve(
    regions: Annotated[str, typer.Option("--regions", help="Fleet TOML (see examples/regions-3.toml).")],
    policy: Annotated[str, typer.Option(help="traffic | local-only | global | spill")] = "traffic",
    ray_address: RayAddressOpt = None,
    host: Annotated[str, typer.Option(help="The gateway's bind address (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="The gateway's port; default: a free one.")] = None,
    start_timeout: Annotated[float, typer.Option(help="Seconds for every worker to load its models.")] = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """Start a multi-region fleet (gateway + one worker per slot) until Ctrl-C or SIGTERM: local processes, or
    Ray actors. Workers host the tasks their region names in the TOML and load their models before serving.

    framefleet serve --regions examples/regions-serve.toml --port 8100 [--ray-address 127.0.0.1:6390]
    """
    import time

    def body() -> None:
        if policy not in POLICIES:
            raise InputError(f"--policy {policy!r}: use one of {', '.join(POLICIES)}")
        if port is not None and not 1 <= port <= 65535:
            raise InputError(f"--port {port}: give 1 to 65535")
        fleet = make_fleet(regions, policy, None, ray_address, host, port)
        with fleet.start(timeout_s=start_timeout):
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
    policy: Annotated[
        str | None, typer.Option(help="traffic | local-only | global | spill (when starting the fleet).")
    ] = None,
    retry: Annotated[str, typer.Option(help="jittered (budgeted, full jitter) | naive (immediate).")] = "jittered",
    url: Annotated[str | None, typer.Option(help="An already running gateway; default: start a local fleet.")] = None,
    ray_address: RayAddressOpt = None,
    api_key: Annotated[str, typer.Option(help="API key for the gateway.")] = "dev-key",
    seed: Annotated[int, typer.Option(help="Seed for arrivals and jitter.")] = 0,
    plot: Annotated[str | None, typer.Option(help="Write a PNG of success rate and per-region load.")] = None,
    task: Annotated[
        str, typer.Option(help="synthetic (the TOML's \\[service] sleep) | animate (real photographs, our student).")
    ] = "synthetic",
    scenario_out: Annotated[
        str | None,
        typer.Option(help="Write a simulator scenario TOML of this fleet, rate and client with the measured service."),
    ] = None,
    start_timeout: Annotated[float, typer.Option(help="Seconds for a started fleet's workers to load models.")] = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """Open-loop Poisson load through the real client; report success, goodput, attempts, latency and the
    workers' service times.

    framefleet loadtest --regions examples/regions-serve.toml --task animate --rate 2 --duration 30 \
        --scenario-out measured.toml --json
    """
    import asyncio
    from contextlib import nullcontext
    from pathlib import Path

    from framefleet.serve.config import load_fleet
    from framefleet.serve.loadtest import TASKS, check_task, parse_skew, plot_report, run_load, scenario_toml

    def body() -> None:
        if task not in TASKS:
            raise InputError(f"--task {task!r}: use one of {', '.join(TASKS)}")
        if scenario_out is not None and not Path(scenario_out).resolve().parent.is_dir():
            raise InputError(f"--scenario-out {scenario_out}: its folder does not exist")
        if not start_timeout > 0:
            raise InputError(f"--start-timeout must be positive, got {start_timeout}")
        config = load_fleet(regions)
        check_task(task, config)
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
        with fleet.start(timeout_s=start_timeout) if fleet is not None else nullcontext():
            target = url or (fleet.url if fleet is not None else "")
            report = asyncio.run(
                run_load(
                    target, config, rate=rate, duration_s=duration, skew=sk, retry=retry, api_key=api_key, seed=seed,
                    task=task,
                )
            )  # fmt: skip
        if plot:
            plot_report(report, config, plot, f"{policy or 'traffic'} / {retry}: offered {report.offered_rps} rps")
        payload = report.to_dict() | {"policy": policy or "traffic", "retry": retry}
        if scenario_out is not None:
            text = scenario_toml(config, report, retry=retry, policy=policy or "traffic", seed=seed, source=regions)
            Path(scenario_out).write_text(text)
            payload["scenario"] = str(scenario_out)

        def render() -> None:
            t = Table(title="load test", title_justify="left")
            t.add_column("metric")
            t.add_column("value", justify="right")
            for k in ("requests", "succeeded", "success_rate", "goodput_rps", "capacity_rps", "offered_rps",
                      "attempts_per_request", "cross_region_share", "launch_lag_ms_p99"):  # fmt: skip
                t.add_row(k, str(payload[k]))
            t.add_row("latency_ms p50/p95/p99", "/".join(str(v) for v in payload["latency_ms"].values()))
            svc = payload["service_ms"]
            t.add_row("service_ms mean/p50/p95/p99", "/".join(str(svc[k]) for k in ("mean", "p50", "p95", "p99")))
            t.add_row("service cv", str(svc["cv"]))
            if "scenario" in payload:
                t.add_row("scenario", payload["scenario"])
            out.print(t)

        emit(payload, as_json, render)

    run(as_json, body)


@app.command()
def demo(as_json: JsonOpt = False) -> None:
    """The main job on embedded defaults: ingest real sample clips, build their ABR ladders, split/join."""
    from framefleet.demo import run_demo

    run(as_json, lambda: run_demo(as_json=as_json, console=out))


def register_commands() -> None:
    """Import the modules that add their commands to `app` (kept out of import time: `import framefleet.cli`
    stays light)."""
    import framefleet.animate_cli
    import framefleet.campaign.commands
    import framefleet.enhance_cli
    import framefleet.evaluate.commands
    import framefleet.live.commands
    import framefleet.sim.commands  # noqa: F401  (registers simulate and capacity)


def main() -> None:
    register_commands()
    app()


if __name__ == "__main__":
    main()
