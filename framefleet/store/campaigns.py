"""Campaign rows in the store: the campaign (kill switch, delivery throttle) and one outcome per recipient.

A campaign's videos are variants of one asset. The variant's producer parameters are (campaign, recipient),
so the database itself (the unique (asset, producer) constraint) holds at most one video per recipient, and
`campaign_recipients` (primary key (campaign, recipient)) at most one outcome: a rerun after a crash, or a
task retried by Ray, can never add a second video.

    cs = CampaignStore(store)
    cs.ensure("friends-day", date(2027, 2, 4))
    cs.record_rendered("friends-day", "p1", tz="Asia/Kolkata", opens_at=..., video=Path("p1.mp4"), ...)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from framefleet.errors import InputError, NotFound
from framefleet.store.models import Asset, Campaign, CampaignRecipient, Variant, utcnow
from framefleet.store.store import Producer, Store

TENANT = "campaigns"
PRODUCER_MODEL = "campaign-render"
PRODUCER_VERSION = "1"  # part of the uniqueness: bump only for a new campaign format, never per renderer fix


def producer_for(campaign: str, recipient: str) -> Producer:
    """The deterministic identity of a recipient's video: the same (campaign, recipient), the same key."""
    return Producer(PRODUCER_MODEL, PRODUCER_VERSION, {"campaign": campaign, "recipient": recipient})


@dataclass(frozen=True)
class Delivery:
    """What the delivery endpoint needs about one recipient."""

    recipient: str
    status: str
    reason: str | None
    opens_at: datetime
    tz: str
    variant_id: str | None
    blob_key: str | None
    delivery_share: float


class CampaignStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def ensure(self, name: str, day: date) -> Campaign:
        """The campaign `name`, created on first use. The same name with another date is a mistake."""
        if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
            raise InputError(f"campaign name {name!r}: use 1-64 letters, digits, '-', '_' or '.'")
        existing = self.get(name, missing_ok=True)
        if existing is not None:
            if existing.day != day.isoformat():
                raise InputError(f"campaign {name!r} is for {existing.day}, not {day.isoformat()}; pick another name")
            return existing
        digest = hashlib.sha256(f"campaign:{name}".encode()).hexdigest()
        asset = Asset(tenant=TENANT, kind="campaign", source_name=name, sha256=digest, size_bytes=0)
        try:
            with self.store.session() as s:
                s.add(asset)
                s.flush()
                s.add(Campaign(name=name, day=day.isoformat(), asset_id=asset.id))
        except IntegrityError:  # another runner created it at the same moment
            pass
        return self.ensure(name, day)

    def get(self, name: str, *, missing_ok: bool = False) -> Campaign | None:
        with self.store.session() as s:
            row = s.get(Campaign, name)
        if row is None and not missing_ok:
            raise NotFound(f"no campaign {name!r}; start it with `framefleet campaign run`")
        return row

    def killed(self, name: str) -> bool:
        with self.store.session() as s:
            return bool(s.scalar(select(Campaign.killed).where(Campaign.name == name)))

    def set_killed(self, name: str, killed: bool = True) -> None:
        with self.store.session() as s:
            row = s.get(Campaign, name)
            if row is None:
                raise NotFound(f"no campaign {name!r}")
            row.killed = killed

    def set_delivery_share(self, name: str, share: float) -> None:
        if not 0.0 <= share <= 1.0:
            raise InputError(f"delivery share must be within 0..1, got {share}")
        with self.store.session() as s:
            row = s.get(Campaign, name)
            if row is None:
                raise NotFound(f"no campaign {name!r}")
            row.delivery_share = share

    def finished(self, name: str) -> dict[str, str]:
        """recipient → status for those that need no more work (rendered or skipped; failures are retried)."""
        with self.store.session() as s:
            rows = s.execute(
                select(CampaignRecipient.recipient, CampaignRecipient.status).where(
                    CampaignRecipient.campaign == name, CampaignRecipient.status != "failed"
                )
            ).all()
        return {r: st for r, st in rows}

    def counts(self, name: str) -> dict[str, int]:
        with self.store.session() as s:
            rows = s.execute(
                select(CampaignRecipient.status, func.count())
                .where(CampaignRecipient.campaign == name)
                .group_by(CampaignRecipient.status)
            ).all()
        return {st: int(n) for st, n in rows}

    def _upsert(self, name: str, recipient: str, **values: Any) -> None:
        with self.store.session() as s:
            row = s.get(CampaignRecipient, (name, recipient))
            if row is None:
                s.add(CampaignRecipient(campaign=name, recipient=recipient, updated_at=utcnow(), **values))
            elif row.status != "rendered":  # a rendered video is final: a late duplicate changes nothing
                for k, v in values.items():
                    setattr(row, k, v)
                row.updated_at = utcnow()

    def record_skip(self, name: str, recipient: str, *, tz: str, opens_at: datetime, reason: str) -> None:
        self._upsert(name, recipient, status="skipped", reason=reason, tz=tz, opens_at=opens_at, variant_id=None)

    def record_failure(
        self, name: str, recipient: str, *, tz: str, opens_at: datetime, reason: str, machine: str | None
    ) -> None:
        self._upsert(name, recipient, status="failed", reason=reason, tz=tz, opens_at=opens_at, machine=machine)

    def record_rendered(
        self,
        name: str,
        recipient: str,
        *,
        tz: str,
        opens_at: datetime,
        video: Path,
        media: dict[str, Any],
        machine: str | None,
        render_s: float | None,
    ) -> Variant:
        """Move `video` into the blob store and record it as the recipient's one variant (idempotent)."""
        campaign = self.get(name)
        assert campaign is not None
        producer = producer_for(name, recipient)
        existing = self.store.find_variant(campaign.asset_id, producer)
        if existing is not None:  # a duplicate render (retry, resumed run): keep the first, drop this one
            video.unlink(missing_ok=True)
            variant = existing
        else:
            ref = self.store.blobs.put_file(video, suffix=".mp4", move=True)
            row = Variant(asset_id=campaign.asset_id, name="campaign-video", blob_key=ref.key,
                          size_bytes=ref.size, status="ready", **producer.variant_columns(), **media)  # fmt: skip
            variant, created = self.store.add_variant(row)
            if not created and variant.blob_key != ref.key and not self.store._blob_in_use(ref.key):
                self.store.blobs.delete(ref.key)
        self._upsert(name, recipient, status="rendered", reason=None, tz=tz, opens_at=opens_at,
                     variant_id=variant.id, machine=machine, render_s=render_s)  # fmt: skip
        return variant

    def delivery(self, name: str, recipient: str) -> Delivery:
        """The recipient's outcome for delivery; NotFound when the campaign or the recipient is unknown."""
        with self.store.session() as s:
            row = s.execute(
                select(CampaignRecipient, Campaign.delivery_share, Variant.blob_key)
                .join(Campaign, Campaign.name == CampaignRecipient.campaign)
                .outerjoin(Variant, Variant.id == CampaignRecipient.variant_id)
                .where(CampaignRecipient.campaign == name, CampaignRecipient.recipient == recipient)
            ).first()
        if row is None:
            raise NotFound(f"no video for {recipient!r} in campaign {name!r}")
        r, share, key = row
        return Delivery(r.recipient, r.status, r.reason, r.opens_at, r.tz, r.variant_id, key, float(share))

    def videos(self, name: str) -> list[Variant]:
        campaign = self.get(name)
        assert campaign is not None
        with self.store.session() as s:
            return list(
                s.scalars(
                    select(Variant).where(
                        Variant.asset_id == campaign.asset_id, Variant.producer_model == PRODUCER_MODEL
                    )
                )
            )
