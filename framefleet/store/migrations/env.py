"""Alembic environment. The store runs `upgrade head` itself on open (passing its connection in
`config.attributes["connection"]`); `alembic -c alembic.ini ...` from the repo root also works and then
uses FRAMEFLEET_DATABASE_URL or the default SQLite file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from framefleet.config import Settings
from framefleet.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(Settings.from_env().database_url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=Settings.from_env().database_url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
