"""Store on SQLite and PostgreSQL: migrations, uniqueness per (asset, producer), tenants, jobs, blobs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from framefleet.config import Settings
from framefleet.errors import InputError, NotFound, StoreError
from framefleet.store import Asset, BlobStore, Producer, Store, Variant
from framefleet.store.models import Base


def _asset(sha: str = "a" * 64, tenant: str = "local") -> Asset:
    return Asset(tenant=tenant, kind="video", source_name="x.mp4", sha256=sha, size_bytes=10)


def _variant(asset_id: str | None, producer: Producer, name: str = "v") -> Variant:
    return Variant(asset_id=asset_id, name=name, **producer.variant_columns(), metrics={}, status="ready")


def test_migrations_match_models(store: Store) -> None:
    """The Alembic migrations build exactly the schema the models describe (no drift)."""
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("select version_num from alembic_version")).scalar_one() == "0005"


def test_reopen_is_idempotent(settings: Settings) -> None:
    Store.open(settings).close()
    s = Store.open(settings)  # migrations already at head: no error, no duplicate tables
    assert s.list_assets() == []
    s.close()


def test_variant_unique_per_asset_and_producer(store: Store) -> None:
    original = Producer("upload", "1", {"sha256": "a" * 64})
    asset, created = store.create_asset(_asset(), _variant(None, original, "original"))
    assert created and [v.name for v in asset.variants] == ["original"]
    p = Producer("abr-h264", "1", {"height": 360, "parent": asset.variants[0].id})
    v1, c1 = store.add_variant(_variant(asset.id, p, "h264-360p"))
    v2, c2 = store.add_variant(_variant(asset.id, Producer(p.model, p.version, dict(p.params)), "h264-360p"))
    assert c1 and not c2 and v1.id == v2.id  # asking twice for the same work returns the first result
    v3, c3 = store.add_variant(_variant(asset.id, Producer(p.model, "2", p.params), "h264-360p"))
    assert c3 and v3.id != v1.id  # a new producer version is new work
    assert store.find_variant(asset.id, p) is not None
    assert store.get_variant(v1.id).name == "h264-360p"
    with pytest.raises(NotFound, match="no variant"):
        store.get_variant("missing")
    assert len(store.get_asset(asset.id).variants) == 3


def test_same_content_is_one_asset_per_tenant(store: Store) -> None:
    up = Producer("upload", "1", {"sha256": "b" * 64})
    a1, c1 = store.create_asset(_asset("b" * 64), _variant(None, up, "original"))
    a2, c2 = store.create_asset(_asset("b" * 64), _variant(None, up, "original"))
    assert c1 and not c2 and a1.id == a2.id
    a3, c3 = store.create_asset(_asset("b" * 64, tenant="other"), _variant(None, up, "original"))
    assert c3 and a3.id != a1.id
    with pytest.raises(NotFound):
        store.get_asset(a3.id, tenant="local")  # one tenant cannot read another's asset
    assert [a.id for a in store.list_assets("other")] == [a3.id]


def test_jobs_record_outcome(store: Store) -> None:
    job = store.start_job("encode", None, {"rungs": ["360p"]})
    assert store.get_job(job.id).status == "running"
    store.finish_job(job, result={"variants": ["v1"]})
    done = store.get_job(job.id)
    assert done.status == "succeeded" and done.result == {"variants": ["v1"]} and done.finished_at is not None
    failed = store.start_job("encode", None, {})
    store.finish_job(failed, error="boom")
    assert store.get_job(failed.id).status == "failed" and store.get_job(failed.id).error == "boom"
    with pytest.raises(NotFound):
        store.get_job("nope")


def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid  # reaped: no process has this id now (pids are not reused this soon)


def test_jobs_and_scratch_of_a_dead_process_are_recovered(store: Store, settings: Settings) -> None:
    """What a SIGKILLed run leaves (a "running" job, scratch folders and files) is recovered by the next one;
    a live process's work, another host's and unrelated files are left alone."""
    import socket
    from datetime import UTC, datetime, timedelta

    from framefleet._fs import host_id, scratch_name
    from framefleet.store.models import Job

    dead, me = _dead_pid(), os.getpid()
    mine = store.start_job("enhance", None, {})
    assert (mine.host, mine.pid) == (socket.gethostname(), me)  # a job records who runs it
    running = {"params": {}, "status": "running", "result": {}}
    with store.session() as s:
        s.add_all([
            abandoned := Job(kind="enhance", host=socket.gethostname(), pid=dead, **running),
            elsewhere := Job(kind="enhance", host="other-host", pid=dead, **running),
            old := Job(kind="encode", created_at=datetime.now(UTC) - timedelta(days=2), **running),  # no owner yet
            recent := Job(kind="encode", **running),
        ])  # fmt: skip
    tmp = settings.tmp_dir
    stale_dir = tmp / f"enhance-p{dead}.{host_id()}-abc123"
    (stale_dir / "parts").mkdir(parents=True)
    (stale_dir / "parts" / "seg-000.mp4").write_bytes(b"x")
    stale_file = tmp / scratch_name(".mp4").replace(f"p{me}.", f"p{dead}.")
    stale_file.write_bytes(b"x")
    live_dir = tmp / f"enhance-p{me}.{host_id()}-def456"
    other_host = tmp / f"gain-p{dead}.00000000-0a1b2c"
    legacy_old, legacy_new = tmp / "enhance-ol9d4k2x", tmp / ".tmp-0123456789abcdef.mp4"
    unrelated = tmp / "campaign-staging"
    for d in (live_dir, other_host, legacy_old, unrelated):
        d.mkdir()
    legacy_new.write_bytes(b"x")
    two_days_ago = datetime.now(UTC).timestamp() - 2 * 86400
    os.utime(legacy_old, (two_days_ago, two_days_ago))

    got = store.recover_abandoned()
    assert sorted(got["jobs"]) == sorted([abandoned.id, old.id])
    assert sorted(got["scratch"]) == sorted([stale_dir.name, stale_file.name, legacy_old.name])
    assert {p.name for p in tmp.iterdir()} == {live_dir.name, other_host.name, legacy_new.name, unrelated.name}
    failed = store.get_job(abandoned.id)
    assert failed.status == "failed" and f"pid {dead}" in (failed.error or "") and failed.finished_at is not None
    for job in (mine, elsewhere, recent):
        assert store.get_job(job.id).status == "running"
    assert store.recover_abandoned() == {"jobs": [], "scratch": []}  # idempotent


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"cannot reach the database.*FRAMEFLEET_DATABASE_URL"):
        Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2", tmp_path / "b")


def test_default_settings_use_sqlite_under_home(home: Path) -> None:
    s = Settings.from_env()
    assert s.database_url == f"sqlite:///{home / 'framefleet.db'}"
    assert s.blob_dir == home / "blobs"
    Store.open(s).close()
    assert (home / "framefleet.db").is_file()


def test_bad_env_setting_is_named(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMEFLEET_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(InputError, match="FRAMEFLEET_MAX_IMAGE_PIXELS"):
        Settings.from_env()


# --- blobs ------------------------------------------------------------------------------------------


def test_blobs_are_content_addressed_and_deduplicated(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs", tmp_path / "tmp")
    src = tmp_path / "a.MP4"
    src.write_bytes(b"hello video")
    r1 = blobs.put_file(src)
    r2 = blobs.put_file(src)
    assert r1.key == r2.key and r1.created and not r2.created
    assert r1.key.endswith(".mp4") and r1.key.startswith(f"{r1.sha256[:2]}/{r1.sha256[2:4]}/")
    assert blobs.open_path(r1.key).read_bytes() == b"hello video"
    assert src.exists()  # copy mode leaves the source alone
    assert list((tmp_path / "tmp").iterdir()) == []  # no temp files left


def test_blob_move_consumes_source(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs", tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    staged = tmp_path / "tmp" / "out.mp4"
    staged.write_bytes(b"encoded")
    ref = blobs.put_file(staged, move=True)
    assert not staged.exists() and blobs.exists(ref.key)


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "ab/cd/../../../x",
        "ab/cd/" + "0" * 64 + "/../../x",
        "AB/CD/" + "A" * 64,
        "ab/cd/" + "0" * 63,
        "",
        "ab\\cd\\" + "0" * 64,
    ],
)
def test_blob_keys_cannot_escape(tmp_path: Path, key: str) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    with pytest.raises(InputError, match="invalid blob key"):
        blobs.path(key)


def test_blob_symlinked_root_still_contains_keys(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    blobs = BlobStore(tmp_path / "link")
    src = tmp_path / "f.bin"
    src.write_bytes(b"x")
    ref = blobs.put_file(src)
    assert blobs.path(ref.key).is_relative_to(real)


def test_results_by_idempotency_key_are_per_tenant(store: Store) -> None:
    job, created = store.record_result("local", "synthetic", "req-1", {"echo": 1}, {"ok": True})
    again, created2 = store.record_result("local", "synthetic", "req-1", {"echo": 1}, {"ok": "second"})
    assert created and not created2 and again.id == job.id and again.result == {"ok": True}
    found = store.find_result("local", "req-1")
    assert found is not None and found.result == {"ok": True}
    assert store.find_result("other", "req-1") is None  # another tenant's key space
    _, created3 = store.record_result("other", "synthetic", "req-1", {}, {"ok": 3})
    assert created3
