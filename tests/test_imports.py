"""The import structure: pure modules stay light, and the packages import each other in one direction only.

Heavy imports are checked in a fresh interpreter (this test process has long since imported everything)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "framefleet"

PURE = (
    "framefleet.serve.traffic",
    "framefleet.serve.retry",
    "framefleet.serve.balance",
    "framefleet.serve.service",
    "framefleet.quality.gate",
    "framefleet.sim",
    "framefleet.campaign.curate",
    "framefleet.campaign.rollout",
    "framefleet.campaign.timeline",
    "framefleet.campaign.health",
)
HEAVY = ("fastapi", "starlette", "av", "cv2", "torch")


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, check=True)


def test_pure_modules_import_nothing_heavy() -> None:
    code = (
        f"import json, sys\nimport {', '.join(PURE)}\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    loaded = json.loads(_python("-c", code).stdout)
    assert loaded == [], f"importing {', '.join(PURE)} loaded {loaded}"


def test_importtime_of_the_simulator_shows_no_web_or_media_stack() -> None:
    report = _python("-X", "importtime", "-c", "import framefleet.sim").stderr
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in report.splitlines() if "|" in line}
    assert "framefleet" in imported  # the report is what we think it is
    assert not imported & {"fastapi", "starlette", "av", "cv2"}, sorted(
        imported & {"fastapi", "starlette", "av", "cv2"}
    )


def test_worker_still_exports_service_time() -> None:
    from framefleet.serve.service import ServiceTime
    from framefleet.serve.worker import ServiceTime as FromWorker

    assert FromWorker is ServiceTime


def test_lazy_quality_package_keeps_its_public_names() -> None:
    import framefleet.quality as quality

    for name in quality.__all__:
        assert getattr(quality, name) is not None
        assert name in dir(quality)


# --- the package-level import graph --------------------------------------------------------------------------------
def _unit(module: str) -> str | None:
    """framefleet.tasks.enhance -> "tasks"; framefleet.cli -> "cli"; anything outside framefleet -> None."""
    parts = module.split(".")
    if parts[0] != "framefleet":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    """Every framefleet module `path` imports, at module level or inside functions (TYPE_CHECKING included)."""
    package = list(path.relative_to(PACKAGE.parent).parts[:-1])  # what a relative import is relative to
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)  # `from framefleet import tasks`
    return {m for m in found if m.split(".")[0] == "framefleet"}


def _graph() -> dict[tuple[str, str], list[str]]:
    """(unit, unit it imports) -> the files where that happens; units as `_unit`."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        src = _unit(module.removesuffix(".__init__")) if module != "framefleet.__init__" else "__init__"
        for target in _imports(path):
            dst = _unit(target)
            if src is not None and dst is not None and dst != src:
                edges.setdefault((src, dst), []).append(str(path.relative_to(PACKAGE.parent)))
    return edges


def test_the_graph_sees_known_edges() -> None:
    edges = _graph()
    assert ("tasks", "media") in edges and ("cli", "demo") in edges and ("fleet", "serve") in edges


def test_tasks_never_import_fleet() -> None:
    """A task never picks its runtime: the caller passes how segments run."""
    assert ("tasks", "fleet") not in _graph(), _graph()[("tasks", "fleet")]


def test_media_imports_no_higher_layer() -> None:
    edges = _graph()
    bad = {
        dst: edges[("media", dst)] for dst in ("models", "store", "tasks", "serve", "fleet") if ("media", dst) in edges
    }
    assert not bad, bad


def test_no_cycle_between_cli_and_demo() -> None:
    edges = _graph()
    assert not (("cli", "demo") in edges and ("demo", "cli") in edges), (
        edges.get(("cli", "demo")),
        edges.get(("demo", "cli")),
    )
