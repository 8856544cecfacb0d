"""Use cases: one function each, (request, store, ...) -> variants. The same function runs in-process
(CLI), inside a serving worker and inside a Ray task."""

from framefleet.tasks.encode import EncodeResult, encode_ladder
from framefleet.tasks.ingest import IngestResult, ingest

__all__ = ["EncodeResult", "IngestResult", "encode_ladder", "ingest"]
