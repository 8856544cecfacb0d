"""Delivery of campaign videos: the video only from the recipient's local campaign day on, never before.

`deliver(store, campaign, recipient, now)` is what the gateway endpoint and `framefleet campaign video` call.
The order of the checks matters: before the opening nobody learns anything but the opening time (not even
whether a video was made), and the delivery throttle (`framefleet campaign throttle NAME --delivery 0.3`)
serves a stable share of recipients, so pulling the product back (0) or ramping it up needs no redeploy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from framefleet.errors import InputError, NotFound, NotYet
from framefleet.store import Store
from framefleet.store.campaigns import CampaignStore


@dataclass(frozen=True)
class Delivered:
    campaign: str
    recipient: str
    variant_id: str
    path: Path
    opens_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign, "recipient": self.recipient, "variant_id": self.variant_id,
                "opens_at": self.opens_at.isoformat(), "bytes": self.path.stat().st_size}  # fmt: skip


def in_share(campaign: str, recipient: str, share: float) -> bool:
    """Whether the throttle serves `recipient`: a stable hash bucket, so raising the share only adds people."""
    if share >= 1.0:
        return True
    bucket = int.from_bytes(hashlib.sha256(f"{campaign}\0{recipient}".encode()).digest()[:8], "big") / 2**64
    return bucket < share


def deliver(store: Store, campaign: str, recipient: str, now: datetime) -> Delivered:
    """The recipient's video file, or NotYet (before the opening) / NotFound (none, skipped, or throttled)."""
    if now.tzinfo is None:
        raise InputError("now must be timezone-aware")
    d = CampaignStore(store).delivery(campaign, recipient)
    opens = d.opens_at if d.opens_at.tzinfo is not None else d.opens_at.replace(tzinfo=UTC)  # SQLite drops it
    if now < opens:
        local = opens.astimezone(ZoneInfo(d.tz))
        raise NotYet(
            f"the {campaign} video for {recipient} is not available yet; it opens at {local.isoformat()} "
            f"({d.tz}), {opens.astimezone(UTC).isoformat()}",
            opens_at=opens.astimezone(UTC).isoformat(),
        )
    if not in_share(campaign, recipient, d.delivery_share):
        raise NotFound(f"the {campaign} videos are paused for now (delivery throttle); try again later")
    if d.status != "rendered" or d.blob_key is None or d.variant_id is None:
        raise NotFound(f"there is no {campaign} video for {recipient}")
    return Delivered(campaign, recipient, d.variant_id, store.blobs.open_path(d.blob_key), opens)
