"""Export: a stored variant (the original, an ABR rendition, an enhanced or animated video) written out as a file.

The file is written under a temporary name in the target's folder and renamed into place, so a reader never
sees half a file and an interrupted export leaves the old file (if any) as it was.

    framefleet assets export VARIANT_ID -o clip-720p.mp4
"""

from __future__ import annotations

from pathlib import Path

from framefleet.errors import InputError, NotFound
from framefleet.media.formats import same_format
from framefleet.store import Store, Variant
from framefleet.tasks._variants import copy_out


def export_variant(store: Store, variant_id: str, output: str | Path, tenant: str = "local") -> tuple[Variant, Path]:
    """Write variant `variant_id`'s file to `output` (replaced if it exists); return the variant and the path."""
    try:
        variant = store.get_variant(variant_id, tenant)
    except NotFound:
        raise NotFound(
            f"no variant {variant_id!r}; `framefleet assets show ASSET_ID --json` lists an asset's variant ids"
        ) from None
    if variant.status != "ready" or variant.blob_key is None:
        raise InputError(f"variant {variant_id} ({variant.name}) has no stored file (status {variant.status})")
    blob = store.blobs.open_path(variant.blob_key)
    dst = Path(output)
    if dst.is_dir():
        raise InputError(f"-o {dst}: is a folder; give a file name, e.g. {dst / (variant.name + blob.suffix)}")
    if blob.suffix and not same_format(dst.suffix, blob.suffix):
        raise InputError(
            f"-o {dst}: variant {variant.name} is a {blob.suffix.lstrip('.').upper()} file; "
            f"give a path ending in {blob.suffix}"
        )
    return variant, copy_out(blob, dst)


__all__ = ["export_variant"]
