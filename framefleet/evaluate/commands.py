"""`framefleet study ...`: create, list, results, export, serve (registered on the CLI).

framefleet study create --name sr-1 --asset A1 --asset A2 --variants original,espcn,bicubic --gold 2 --json
framefleet study serve --port 8800          # raters open http://127.0.0.1:8800/rate/<token>
framefleet study results STUDY_ID --json --plot plots/ --html results.html
framefleet study export STUDY_ID -o votes.csv
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from framefleet._cli import JsonOpt, app, emit, out, run
from framefleet.errors import InputError

study_app = typer.Typer(no_args_is_help=True, help="Crowd subjective studies: side-by-side ratings of variants.")
app.add_typer(study_app, name="study")

DEFAULT_PORT = 8800
BaseUrlOpt = Annotated[
    str, typer.Option("--base-url", help="Where `study serve` is reachable by raters (for the printed links).")
]


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@study_app.command("create")
def create_cmd(
    name: Annotated[str, typer.Option("--name", help="A name for people (the study's id is generated).")],
    asset: Annotated[list[str], typer.Option("--asset", help="Asset id (repeatable, or comma-separated).")],
    variants: Annotated[str, typer.Option("--variants", help="Comma-separated: original,espcn,bicubic,...")],
    pairs: Annotated[str, typer.Option("--pairs", help="all: every pair; adjacent: neighbours in --variants.")] = "all",
    gold: Annotated[int, typer.Option("--gold", min=0, help="Gold items: the same video on both sides.")] = 2,
    traps: Annotated[int, typer.Option("--traps", min=0, help="Trap items: the original vs a broken copy.")] = 1,
    raters_per_item: Annotated[int, typer.Option("--raters-per-item", min=1, help="Raters who see each pair.")] = 3,
    items_per_rater: Annotated[
        int | None, typer.Option("--items-per-rater", min=1, help="Pair items per session; default: all of them.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for sides, order and dealing.")] = 0,
    base_url: BaseUrlOpt = f"http://127.0.0.1:{DEFAULT_PORT}",
    as_json: JsonOpt = False,
) -> None:
    """Build a study from stored variants: pair, gold and trap items, and one rating link per rater."""

    def body() -> dict[str, Any]:
        from framefleet.config import Settings
        from framefleet.evaluate.study import StudySpec, create_study
        from framefleet.store import Store

        spec = StudySpec(name=name, assets=_split(asset), variants=_split([variants]), pairs=pairs, gold=gold,
                         traps=traps, raters_per_item=raters_per_item, items_per_rater=items_per_rater,
                         seed=seed)  # fmt: skip
        settings = Settings.from_env()
        return create_study(Store.open(settings), spec, settings).to_dict(base_url)

    payload = run(as_json, body)

    def render() -> None:
        s, n = payload["study"], payload["items"]
        out.print(f"study {s['id']} — {s['name']}: {n['pair']} pairs, {n['gold']} gold, {n['trap']} traps")
        t = Table("rater", "items", "link")
        for r in payload["raters"]:
            t.add_row(r["rater"], str(r["items"]), r["url"])
        out.print(t)

    emit(payload, as_json, render)


@study_app.command("list")
def list_cmd(as_json: JsonOpt = False) -> None:
    """List studies with their vote counts."""

    def body() -> dict[str, Any]:
        from framefleet.store import Store
        from framefleet.store.studies import StudyStore

        ss = StudyStore(Store.open())
        rows = []
        for st in ss.studies():
            raters = ss.raters(st.id)
            rows.append({"id": st.id, "name": st.name, "created_at": st.created_at.isoformat(), "raters": len(raters),
                         "votes": sum(r.answered for r in raters),
                         "expected_votes": sum(len(r.items) for r in raters)})  # fmt: skip
        return {"studies": rows}

    payload = run(as_json, body)

    def render() -> None:
        t = Table("id", "name", "raters", "votes", "created")
        for r in payload["studies"]:
            t.add_row(r["id"], r["name"], str(r["raters"]), f"{r['votes']}/{r['expected_votes']}", r["created_at"])
        out.print(t)

    emit(payload, as_json, render)


@study_app.command("export")
def export_cmd(
    study_id: Annotated[str, typer.Argument(metavar="STUDY_ID")],
    output: Annotated[Path, typer.Option("-o", "--output", help="votes.csv or votes.json")],
    as_json: JsonOpt = False,
) -> None:
    """Write the study's raw votes (one row per vote, with the item's kind, variants and known answer)."""

    def body() -> dict[str, Any]:
        from framefleet.evaluate.study import write_votes
        from framefleet.store import Store

        n = write_votes(Store.open(), study_id, output)
        return {"study": study_id, "output": str(output), "votes": n}

    payload = run(as_json, body)
    emit(payload, as_json, lambda: out.print(f"{payload['votes']} votes → {payload['output']}"))


@study_app.command("results")
def results_cmd(
    study_id: Annotated[str, typer.Argument(metavar="STUDY_ID")],
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the plots (PNG) into this folder.")] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the results page (one self-contained HTML file) here.")
    ] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", min=100, help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Screen raters, MOS with confidence intervals, rater model, Bradley–Terry with intervals, metric
    correlations, gain by input quality and the gate threshold it suggests (against quality/gate.py's current one)."""

    def body() -> dict[str, Any]:
        from framefleet.evaluate.report import build_report, render_html, write_html
        from framefleet.store import Store

        if html is not None and (html.is_dir() or not html.resolve().parent.is_dir()):
            raise InputError(f"--html {html}: give a file in an existing folder, such as results.html")
        report = build_report(Store.open(), study_id, n_boot=n_boot, seed=seed)
        if report.results is None:
            why = "has no votes yet; share its rating links (`framefleet study serve`)"
            raise InputError(f"study {study_id} {why}" if not report.n_votes else f"study {study_id}: {report.message}")
        payload: dict[str, Any] = report.to_dict()
        if plot is not None:
            from framefleet.evaluate.plots import plot_results

            plot.mkdir(parents=True, exist_ok=True)
            payload["plots"] = [str(p) for p in plot_results(report.results, plot)]
        if html is not None:
            payload["html"] = str(write_html(render_html(report), html))
        return payload

    payload = run(as_json, body)
    emit(payload, as_json, lambda: _render_results(payload))


def _render_results(payload: dict[str, Any]) -> None:
    t = Table(title=f"study {payload['study']}: variants", title_justify="left")
    for col in ("variant", "MOS", "95% CI", "votes", "Bradley–Terry", "95% CI "):
        t.add_column(col, justify="left" if col == "variant" else "right")

    def ci(lo: Any, hi: Any) -> str:
        return f"{lo:.2f}–{hi:.2f}" if isinstance(lo, float) and isinstance(hi, float) else "-"

    for v in payload.get("variants", []):
        mos, bt = v.get("mos"), v.get("bradley_terry")
        t.add_row(str(v.get("variant")), f"{mos:.2f}" if isinstance(mos, float) else "-",
                  ci(v.get("ci_low"), v.get("ci_high")), str(v.get("n_scores")),
                  f"{bt:+.2f}" if isinstance(bt, float) else "-",
                  ci(v.get("bt_ci_low"), v.get("bt_ci_high")))  # fmt: skip
    out.print(t)
    raters = payload.get("raters", [])
    rejected = [r for r in raters if not r.get("kept", True)]
    out.print(f"raters: {len(raters) - len(rejected)} kept, {len(rejected)} rejected")
    for r in rejected:
        out.print(f"  {r.get('rater')}: {r.get('reasons')}")
    for p in payload.get("plots", []):
        out.print(f"plot: {p}")
    if payload.get("html"):
        out.print(f"page: {payload['html']}")


@study_app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Bind address (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = DEFAULT_PORT,
) -> None:
    """Serve the rating page (/rate/<token>), its API (/v1/rate/...) and the results pages (/studies/<id>/results)
    until Ctrl-C (see docs/evaluate.md)."""

    def body() -> None:
        import uvicorn

        from framefleet.evaluate.api import create_study_app
        from framefleet.store import Store

        if not 1 <= port <= 65535:
            raise InputError(f"--port {port}: give 1 to 65535")
        server_app = create_study_app(Store.open())
        out.print(f"studies: rating links http://{host}:{port}/rate/<token>, API /v1/rate/<token>/next, "
                  f"results http://{host}:{port}/studies/<study id>/results")  # fmt: skip
        uvicorn.run(server_app, host=host, port=port, log_level="warning")

    run(False, body)
