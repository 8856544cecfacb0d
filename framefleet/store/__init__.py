"""Store: assets, variants and jobs in SQL (SQLite by default, PostgreSQL in production) and
content-addressed blobs."""

from framefleet.store.blobs import BlobRef, BlobStore, sha256_file
from framefleet.store.models import Asset, Job, Variant
from framefleet.store.store import Producer, Store, migrate

__all__ = ["Asset", "BlobRef", "BlobStore", "Job", "Producer", "Store", "Variant", "migrate", "sha256_file"]
