"""ingest and encode_ladder against both databases: real clips, idempotency, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from framefleet.config import Settings
from framefleet.errors import InputError, MediaError, TooLarge, UnsupportedMedia
from framefleet.media import probe, sample_path
from framefleet.store import Store
from framefleet.tasks import encode_ladder, ingest

from conftest import count_rows, files_under


def test_ingest_real_clip(store: Store, settings: Settings) -> None:
    got = ingest(sample_path("bigbuckbunny"), store, settings=settings)
    assert got.created and got.asset.kind == "video"
    (orig,) = got.asset.variants
    assert orig.name == "original" and orig.parent_id is None and orig.status == "ready"
    assert (orig.width, orig.height, orig.frame_count) == (1280, 720, 132)
    assert orig.video_codec == "h264" and orig.audio_codec == "aac"
    assert orig.fps == pytest.approx(25) and orig.duration == pytest.approx(5.28)
    assert orig.bitrate and orig.size_bytes == sample_path("bigbuckbunny").stat().st_size
    blob = store.blobs.open_path(orig.blob_key or "")
    assert blob.read_bytes() == sample_path("bigbuckbunny").read_bytes()
    again = ingest(sample_path("bigbuckbunny"), store, settings=settings)
    assert not again.created and again.asset.id == got.asset.id
    assert count_rows(store)["assets"] == 1 and len(files_under(settings.blob_dir)) == 1


def test_ingest_image(store: Store, settings: Settings, media: dict[str, Path]) -> None:
    got = ingest(media["image"], store, settings=settings)
    (orig,) = got.asset.variants
    assert got.asset.kind == "image" and (orig.width, orig.height, orig.frame_count) == (64, 48, 1)
    assert orig.video_codec == "png"
    with pytest.raises(InputError, match="is an image"):
        encode_ladder(store, got.asset.id, settings=settings)


def test_the_blob_extension_comes_from_the_content(
    store: Store, settings: Settings, media: dict[str, Path], tmp_path: Path
) -> None:
    """A JPEG called .mp4 is an image stored as .jpg; an MP4 called .png is a video stored as .mp4; a name that
    already says the right format (.jpeg, .mov for an MP4) is kept."""
    from PIL import Image

    Image.open(media["image"]).convert("RGB").save(tmp_path / "jpeg.jpg", format="JPEG")
    cases = {
        "photo.mp4": ((tmp_path / "jpeg.jpg").read_bytes(), "image", ".jpg"),
        "photo.jpeg": ((tmp_path / "jpeg.jpg").read_bytes() + b"\0", "image", ".jpeg"),
        "clip.png": (sample_path("carphone").read_bytes(), "video", ".mp4"),
        "clip.MOV": (media["rotated"].read_bytes(), "video", ".mov"),
        "clip": (media["vfr"].read_bytes(), "video", ".mp4"),
    }
    for name, (data, kind, suffix) in cases.items():
        (tmp_path / name).write_bytes(data)
        got = ingest(tmp_path / name, store, settings=settings)
        key = got.asset.variants[0].blob_key or ""
        assert (got.asset.kind, Path(key).suffix, got.asset.source_name) == (kind, suffix, name), name
        assert store.blobs.open_path(key).read_bytes() == data


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("empty", InputError),
        ("text", InputError),
        ("truncated", InputError),
        ("truncated_tail", InputError),
        ("bomb", TooLarge),
        ("unknown_codec", UnsupportedMedia),
        ("audio_only", UnsupportedMedia),
    ],
)
def test_ingest_bad_input_leaves_nothing(
    store: Store, settings: Settings, media: dict[str, Path], key: str, error: type[Exception]
) -> None:
    before = count_rows(store)
    with pytest.raises(error):
        ingest(media[key], store, settings=settings)
    assert count_rows(store) == before
    assert files_under(settings.blob_dir, settings.tmp_dir) == []


def test_encode_ladder_creates_one_variant_per_rung(store: Store, settings: Settings) -> None:
    asset = ingest(sample_path("bigbuckbunny"), store, settings=settings).asset
    result = encode_ladder(store, asset.id, rungs=[720, 360], settings=settings)
    assert result.created == [True, True] and result.skipped_rungs == []
    names = {v.name: v for v in store.get_asset(asset.id).variants}
    assert set(names) == {"original", "h264-720p", "h264-360p"}
    v360 = names["h264-360p"]
    assert (v360.width, v360.height, v360.frame_count) == (640, 360, 132)
    assert v360.parent_id == names["original"].id and v360.producer_model == "abr-h264"
    assert v360.audio_codec == "aac" and v360.bitrate and v360.size_bytes
    info = probe(store.blobs.open_path(v360.blob_key or ""))  # the stored file is what the row says
    assert (info.width, info.height) == (640, 360) and info.video and info.video.frames == 132
    # A rerun returns the same variants and encodes nothing.
    again = encode_ladder(store, asset.id, rungs=[720, 360], settings=settings)
    assert again.created == [False, False] and [v.id for v in again.variants] == [v.id for v in result.variants]
    assert count_rows(store)["variants"] == 3
    assert count_rows(store)["jobs"] == 2 and files_under(settings.tmp_dir) == []


def test_encode_skips_rungs_above_source(store: Store, settings: Settings) -> None:
    asset = ingest(sample_path("carphone"), store, settings=settings).asset
    result = encode_ladder(store, asset.id, rungs=[720, 480], settings=settings)
    assert result.skipped_rungs == [720, 480]
    assert [(v.width, v.height) for v in result.variants] == [(176, 144)]  # one rendition at source size


def test_encode_failure_leaves_no_variant_or_file(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    asset = ingest(sample_path("bikes"), store, settings=settings).asset
    import framefleet.tasks.encode as enc

    real = enc.transcode

    def fail_midway(src: Path, dst: Path, rung: object, *a: object, **k: object) -> int:
        real(src, dst, rung, *a, **k)  # type: ignore[arg-type]
        raise MediaError("disk full (simulated)")

    monkeypatch.setattr(enc, "transcode", fail_midway)
    blobs_before = files_under(settings.blob_dir)
    with pytest.raises(MediaError, match="simulated"):
        encode_ladder(store, asset.id, rungs=[240], settings=settings)
    assert [v.name for v in store.get_asset(asset.id).variants] == ["original"]
    assert files_under(settings.blob_dir) == blobs_before and files_under(settings.tmp_dir) == []
    with store.engine.connect() as c:
        import sqlalchemy as sa

        status, error = c.execute(sa.text("select status, error from jobs")).one()
    assert status == "failed" and "simulated" in error
