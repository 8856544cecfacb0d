"""The gateway fuzzed against its own OpenAPI schema with schemathesis (in process, bounded): no 5xx for
anything a client can send, and every answer as the schema documents it (status codes, content types).

The same check against a running fleet, from a shell:
    schemathesis run http://127.0.0.1:8100/openapi.json -H "Authorization: Bearer dev-key" \
        -H "X-Region: us-east" --max-examples 30 --checks not_a_server_error,status_code_conformance
Workers are stood in by an httpx MockTransport (a worker's own answers are tested in test_worker.py)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a dev dependency (make test installs it)")

from test_gateway import CONFIG, URLS, ok_worker  # noqa: E402

from framefleet.serve.gateway import Gateway  # noqa: E402
from framefleet.serve.gateway_app import create_gateway_app  # noqa: E402
from framefleet.store import Store  # noqa: E402


def _app(tmp: Path) -> object:
    store = Store(f"sqlite:///{tmp / 'db.sqlite'}", tmp / "blobs", tmp / "tmp")
    app = create_gateway_app(CONFIG, URLS, store=store, seed=3)
    gw: Gateway = app.state.gateway
    gw.http = httpx.AsyncClient(transport=httpx.MockTransport(ok_worker))
    return app


_TMP = Path(tempfile.mkdtemp(prefix="framefleet-schema-"))  # the schema is built at import: so is its store
atexit.register(shutil.rmtree, _TMP, True)
schema = schemathesis.openapi.from_asgi("/openapi.json", _app(_TMP))
schema.config.generation.update(max_examples=25)
schema.config.headers = {"Authorization": "Bearer key-a", "X-Region": "north"}


@schema.parametrize()
def test_gateway_answers_as_its_schema_says(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers={"Authorization": "Bearer key-a", "X-Region": "north"},
        checks=[schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance],
    )
