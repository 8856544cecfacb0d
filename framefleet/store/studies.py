"""Study rows in the store: the study, its items, one session per rater (a secret token) and their votes.

A study is written in one transaction (study, items, rater sessions and its new trap copies' variant rows
together, or nothing). A vote is one row per (rater, item), enforced by a unique constraint, so a second answer
to the same item — a double click, a retried request, two tabs — is refused (`AlreadyVoted`, HTTP 409) and never
counted twice.

    ss = StudyStore(store)
    ss.create(study, items, raters)
    rater, item, answered = ss.next_item(token)
    ss.record_vote(token, ballot)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from framefleet.errors import FramefleetError, NotFound
from framefleet.store.models import Study, StudyItem, StudyRater, StudyVote, Variant, utcnow
from framefleet.store.store import Store


class AlreadyVoted(FramefleetError):
    """The rater has already answered this item; the first answer stands."""

    exit_code = 2
    http_status = 409
    reason = "already_voted"


class UnknownToken(NotFound):
    """A rater link whose token no study issued."""

    reason = "unknown_token"


@dataclass(frozen=True)
class VoteRow:
    """A vote with what the analysis and the export need about its item."""

    vote: StudyVote
    item: StudyItem


class StudyStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(
        self,
        study: Study,
        items: Sequence[StudyItem],
        raters: Sequence[StudyRater],
        *,
        variants: Sequence[Variant] = (),
    ) -> Study:
        """Write the study with its items and rater sessions in one transaction; `variants` (the study's new trap
        copies, which its items show) are inserted first, in the same transaction."""
        with self.store.session() as s:
            for variant in variants:
                s.add(variant)
            s.flush()
            s.add(study)
            s.flush()
            for item in items:
                item.study_id = study.id
                s.add(item)
            for rater in raters:
                rater.study_id = study.id
                s.add(rater)
        return study

    def get(self, study_id: str) -> Study:
        with self.store.session() as s:
            row = s.get(Study, study_id)
        if row is None:
            raise NotFound(f"no study {study_id!r}; list them with `framefleet study list`")
        return row

    def studies(self) -> list[Study]:
        with self.store.session() as s:
            return list(s.scalars(select(Study).order_by(Study.created_at)))

    def items(self, study_id: str) -> list[StudyItem]:
        with self.store.session() as s:
            return list(s.scalars(select(StudyItem).where(StudyItem.study_id == study_id).order_by(StudyItem.position)))

    def raters(self, study_id: str) -> list[StudyRater]:
        with self.store.session() as s:
            return list(
                s.scalars(select(StudyRater).where(StudyRater.study_id == study_id).order_by(StudyRater.created_at))
            )

    def rater(self, token: str) -> StudyRater:
        with self.store.session() as s:
            row = s.scalars(select(StudyRater).where(StudyRater.token == token)).first()
        if row is None:
            raise UnknownToken("unknown rater token; use the link you were given")
        return row

    def _answered(self, rater_id: str) -> set[str]:
        with self.store.session() as s:
            return set(s.scalars(select(StudyVote.item_id).where(StudyVote.rater_id == rater_id)))

    def next_item(self, token: str) -> tuple[StudyRater, StudyItem | None, int]:
        """The rater, their first unanswered item (None when done) and how many they have answered."""
        rater = self.rater(token)
        done = self._answered(rater.id)
        pending = next((i for i in rater.items if i not in done), None)
        if pending is None:
            return rater, None, len(done)
        with self.store.session() as s:
            item = s.get(StudyItem, pending)
        return rater, item, len(done)

    def session_item(self, token: str, item_id: str) -> tuple[StudyRater, StudyItem]:
        """An item of the rater's own session; NotFound for any other (another rater's, another study's)."""
        rater = self.rater(token)
        if item_id not in rater.items:
            raise NotFound(f"item {item_id!r} is not in this rater's session")
        with self.store.session() as s:
            item = s.get(StudyItem, item_id)
        if item is None:
            raise NotFound(f"item {item_id!r} is not in this rater's session")
        return rater, item

    def item_video(self, token: str, item_id: str, side: str) -> Variant:
        """The variant shown on `side` of one of the rater's items."""
        _, item = self.session_item(token, item_id)
        if side not in ("left", "right"):
            raise NotFound(f"no side {side!r}; use left or right")
        with self.store.session() as s:
            variant = s.get(Variant, item.left_variant_id if side == "left" else item.right_variant_id)
        if variant is None or variant.blob_key is None:
            raise NotFound(f"the {side} video of item {item_id!r} is gone from the store")
        return variant

    def record_vote(
        self, token: str, item_id: str, *, left_score: int, right_score: int, preference: str, artifacts: Sequence[str]
    ) -> tuple[StudyVote, int]:
        """Store one answer; returns it with the rater's answered count. A second answer: AlreadyVoted."""
        rater, item = self.session_item(token, item_id)
        vote = StudyVote(study_id=item.study_id, rater_id=rater.id, item_id=item.id, left_score=left_score,
                         right_score=right_score, preference=preference, artifacts=list(artifacts),
                         created_at=utcnow())  # fmt: skip
        try:
            with self.store.session() as s:
                if s.scalars(
                    select(StudyVote.id).where(StudyVote.rater_id == rater.id, StudyVote.item_id == item.id)
                ).first():
                    raise AlreadyVoted(f"item {item_id!r} is already answered; the first answer stands")
                s.add(vote)
                s.flush()
                row = s.get(StudyRater, rater.id)
                assert row is not None
                row.answered = len(set(s.scalars(select(StudyVote.item_id).where(StudyVote.rater_id == rater.id))))
                row.last_vote_at = vote.created_at
                answered = row.answered
        except IntegrityError:  # the same vote raced in from another request: the database kept one
            raise AlreadyVoted(f"item {item_id!r} is already answered; the first answer stands") from None
        return vote, answered

    def vote_count(self, study_id: str) -> int:
        """How many votes the study holds (votes are never changed or deleted: the count versions them)."""
        with self.store.session() as s:
            return int(s.scalar(select(func.count()).select_from(StudyVote).where(StudyVote.study_id == study_id)) or 0)

    def votes(self, study_id: str) -> list[VoteRow]:
        with self.store.session() as s:
            rows = s.execute(
                select(StudyVote, StudyItem)
                .join(StudyItem, StudyItem.id == StudyVote.item_id)
                .where(StudyVote.study_id == study_id)
                .order_by(StudyVote.created_at, StudyVote.id)
            ).all()
        return [VoteRow(v, i) for v, i in rows]


__all__ = ["AlreadyVoted", "StudyStore", "UnknownToken", "VoteRow"]
