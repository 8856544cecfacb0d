"""The store: SQLAlchemy over SQLite (default) or PostgreSQL, plus the blob folder.

Opening a store applies any pending Alembic migrations, so a fresh `FRAMEFLEET_HOME` or an older
database is brought to the current schema without a manual step.

    store = Store.open()                               # from FRAMEFLEET_* settings
    store = Store("postgresql+psycopg://127.0.0.1/test", "/data/blobs")
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from framefleet._fs import pid_alive, sweep_scratch
from framefleet.config import Settings
from framefleet.errors import NotFound, StoreError
from framefleet.store.blobs import BlobStore
from framefleet.store.models import Asset, Job, Variant, utcnow

MIGRATIONS = Path(__file__).parent / "migrations"
_Row = TypeVar("_Row", Variant, Job)


@dataclass(frozen=True)
class Producer:
    """Who made a variant: a model (or encoder) at a version, with parameters. The parameter hash, not
    the parameters, takes part in uniqueness, so any JSON-able parameters work."""

    model: str
    version: str
    params: dict[str, Any]

    @property
    def params_hash(self) -> str:
        canonical = json.dumps(self.params, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def variant_columns(self) -> dict[str, Any]:
        """The Variant columns that identify this producer: `Variant(**producer.variant_columns(), ...)`."""
        return {
            "producer_model": self.model,
            "producer_version": self.version,
            "params_hash": self.params_hash,
            "params": self.params,
        }


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer (CLI + worker processes)
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")  # with WAL: no corruption on a crash, no fsync per commit
    cur.close()


def migrate(engine: Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _abandoned(job: Job, now: datetime) -> bool:
    """A running job of this host whose process is gone; one from before jobs recorded their process (no
    host) counts as abandoned once it is a day old."""
    if job.host is not None:
        return job.pid is None or not pid_alive(job.pid)
    created = job.created_at if job.created_at.tzinfo else job.created_at.replace(tzinfo=UTC)  # SQLite: naive
    return now - created > timedelta(days=1)


class Store:
    def __init__(self, database_url: str, blob_dir: str | Path, tmp_dir: str | Path | None = None) -> None:
        self.url = database_url
        if database_url.startswith("sqlite:///"):
            Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(database_url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            migrate(self.engine)
        except OperationalError as e:
            raise StoreError(
                f"cannot reach the database at {self.engine.url.render_as_string(hide_password=True)}: "
                f"{str(e.orig).strip().splitlines()[0]}; check FRAMEFLEET_DATABASE_URL"
            ) from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.blobs = BlobStore(blob_dir, tmp_dir)

    @classmethod
    def open(cls, settings: Settings | None = None) -> Store:
        s = settings or Settings.from_env()
        return cls(s.database_url, s.blob_dir, s.tmp_dir)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    # --- assets -------------------------------------------------------------------------------------

    def get_asset(self, asset_id: str, tenant: str = "local") -> Asset:
        with self._sessions() as s:
            asset = s.scalars(
                select(Asset).options(selectinload(Asset.variants)).where(Asset.id == asset_id, Asset.tenant == tenant)
            ).first()
        if asset is None:
            raise NotFound(f"no asset {asset_id!r}; list them with `framefleet assets list`")
        return asset

    def find_asset_by_sha(self, sha256: str, tenant: str = "local") -> Asset | None:
        with self._sessions() as s:
            return s.scalars(
                select(Asset)
                .options(selectinload(Asset.variants))
                .where(Asset.sha256 == sha256, Asset.tenant == tenant)
            ).first()

    def list_assets(self, tenant: str = "local", limit: int = 1000) -> list[Asset]:
        with self._sessions() as s:
            return list(
                s.scalars(
                    select(Asset)
                    .options(selectinload(Asset.variants))
                    .where(Asset.tenant == tenant)
                    .order_by(Asset.created_at)
                    .limit(limit)
                )
            )

    def create_asset(self, asset: Asset, original: Variant) -> tuple[Asset, bool]:
        """Insert an asset with its original variant in one transaction. If the same content was already
        ingested by this tenant (a concurrent or repeated ingest), return that asset and False."""
        try:
            with self.session() as s:
                s.add(asset)
                s.flush()
                original.asset_id = asset.id
                s.add(original)
        except IntegrityError:
            existing = self.find_asset_by_sha(asset.sha256, asset.tenant)
            if existing is None:
                raise
            return existing, False
        return self.get_asset(asset.id, asset.tenant), True

    # --- variants -----------------------------------------------------------------------------------

    def find_variant(self, asset_id: str, producer: Producer) -> Variant | None:
        with self._sessions() as s:
            return s.scalars(
                select(Variant).where(
                    Variant.asset_id == asset_id,
                    Variant.producer_model == producer.model,
                    Variant.producer_version == producer.version,
                    Variant.params_hash == producer.params_hash,
                )
            ).first()

    def add_variant(self, variant: Variant) -> tuple[Variant, bool]:
        """Insert a finished variant; if one with the same (asset, producer) exists, return it and False."""
        try:
            with self.session() as s:
                s.add(variant)
        except IntegrityError:
            producer = Producer(variant.producer_model, variant.producer_version, variant.params)
            existing = self.find_variant(variant.asset_id, producer)
            if existing is None:
                raise
            return existing, False
        return variant, True

    def replace_variant(self, variant_id: str, new: Variant) -> Variant:
        """Recompute in place (`--force`): the row keeps its id and producer and takes `new`'s content;
        variants derived from it (ABR rungs) are deleted, being made from the old content. Blobs no
        longer referenced by any variant are removed after the commit."""
        content = (
            "blob_key", "container", "video_codec", "audio_codec", "width", "height", "fps", "frame_count",
            "duration", "bitrate", "size_bytes", "metrics", "status", "name",
        )  # fmt: skip
        with self.session() as s:
            row = s.get(Variant, variant_id)
            if row is None:
                raise NotFound(f"no variant {variant_id!r}")
            children = list(s.scalars(select(Variant).where(Variant.parent_id == variant_id)))
            dropped = {row.blob_key} | {c.blob_key for c in children}
            for child in children:
                s.delete(child)
            for column in content:
                setattr(row, column, getattr(new, column))
            row.created_at = utcnow()
        for key in dropped - {new.blob_key, None}:
            assert key is not None
            if not self._blob_in_use(key):
                self.blobs.delete(key)
        return self.get_variant(variant_id)

    def _blob_in_use(self, key: str) -> bool:
        with self._sessions() as s:
            return s.scalars(select(Variant.id).where(Variant.blob_key == key).limit(1)).first() is not None

    def get_variant(self, variant_id: str, tenant: str | None = None) -> Variant:
        """A variant by id; with `tenant`, only one of that tenant's assets (another tenant's variant is
        reported exactly as a missing one)."""
        if tenant is None:
            return self._get(Variant, variant_id, "variant")
        with self._sessions() as s:
            row = s.scalars(
                select(Variant)
                .join(Asset, Variant.asset_id == Asset.id)
                .where(Variant.id == variant_id, Asset.tenant == tenant)
            ).first()
        if row is None:
            raise NotFound(f"no variant {variant_id!r}")
        return row

    def _get(self, model: type[_Row], row_id: str, what: str) -> _Row:
        with self._sessions() as s:
            row = s.get(model, row_id)
        if row is None:
            raise NotFound(f"no {what} {row_id!r}")
        return row

    # --- jobs ---------------------------------------------------------------------------------------

    def start_job(self, kind: str, asset_id: str | None, params: dict[str, Any], tenant: str = "local") -> Job:
        """A "running" job owned by this process (host and pid recorded for `recover_abandoned`)."""
        job = Job(
            kind=kind, asset_id=asset_id, params=params, tenant=tenant, status="running", result={},
            host=socket.gethostname()[:255], pid=os.getpid(),
        )  # fmt: skip
        with self.session() as s:
            s.add(job)
        return job

    def recover_abandoned(self) -> dict[str, list[str]]:
        """What a killed process (SIGKILL, power loss) could not clean up, recovered at the start of the next
        task: its "running" jobs on this host are marked failed, its scratch files and folders removed.
        Work of live processes and of other hosts is left alone. Returns the job ids and scratch names."""
        host, now = socket.gethostname()[:255], utcnow()
        with self.session() as s:
            running = s.scalars(select(Job).where(Job.status == "running", or_(Job.host == host, Job.host.is_(None))))
            dead = [j for j in running if _abandoned(j, now)]
            for j in dead:
                j.status, j.finished_at = "failed", now
                who = f"pid {j.pid} on {host}" if j.host else "unrecorded, started over a day ago"
                j.error = f"abandoned: its process ({who}) ended without finishing it"
            ids = [j.id for j in dead]
        return {"jobs": ids, "scratch": sweep_scratch(self.blobs.tmp_dir)}

    def finish_job(self, job: Job, *, result: dict[str, Any] | None = None, error: str | None = None) -> Job:
        with self.session() as s:
            row = s.get(Job, job.id)
            if row is None:
                raise NotFound(f"no job {job.id!r}")
            row.status = "failed" if error else "succeeded"
            row.error = error
            row.result = result or {}
            row.finished_at = utcnow()
        return row

    def record_result(
        self, tenant: str, kind: str, request_key: str, params: dict[str, Any], result: dict[str, Any]
    ) -> tuple[Job, bool]:
        """Store a completed request's result under the client's idempotency key. If that key already has
        a result (a retry raced the first attempt), keep the first and return it with False."""
        job = Job(
            kind=kind,
            tenant=tenant,
            request_key=request_key,
            params=params,
            status="succeeded",
            result=result,
            finished_at=utcnow(),
        )
        try:
            with self.session() as s:
                s.add(job)
        except IntegrityError:
            existing = self.find_result(tenant, request_key)
            if existing is None:
                raise
            return existing, False
        return job, True

    def find_result(self, tenant: str, request_key: str) -> Job | None:
        with self._sessions() as s:
            return s.scalars(select(Job).where(Job.tenant == tenant, Job.request_key == request_key)).first()

    def get_job(self, job_id: str) -> Job:
        return self._get(Job, job_id, "job")
