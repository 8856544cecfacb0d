"""Curation: which photos go into one person's video, in which order. Pure: no I/O, no OpenCV, no NumPy.

The caller passes what needs pixels as plain values: per photo, optional face boxes (`FaceBox`, fractions of
the frame; they override the `faces` read from photos.jsonl) and an optional 64-bit perceptual hash (an int).

The rules, in the order they apply:

1. **Safety first.** A photo is dropped when it tags an excluded person (see `exclusions_for`) or shows a face
   attributed to one. When *any* exclusion applies to the recipient, only photos whose every face is named
   are used: a photo without face data, or with one unnamed face, is dropped, because that face may be the
   excluded person. (Comparing the number of faces with the number of tags is not enough: a detector that
   misses a tagged face and finds an excluded bystander gets the count right.) For a recipient without
   exclusions, unnamed faces and photos without face data are fine.
2. **Only photos of the recipient with friends**: the recipient is tagged or has a named face, with at least one
   other person, and everyone else tagged or named is the recipient's friend (an ex-friend or a stranger tagged
   by someone else is never put in a person's video). A person without friends is therefore skipped.
3. **Roles.** A close-up is the recipient with one to three others (2..4 people) whose faces fill at least
   `min_closeup_fill` of the frame (the sum of the face boxes' areas); without face data the fill is unknown and
   the photo still counts as a close-up, ranked after every measured one. A group photo has four or more people
   and is not a close-up. A photo of 2..3 people with faces too small for a close-up is dropped.
4. **Near-duplicates.** Candidates are taken best first; one whose hash is within `max_hash_distance` bits
   (Hamming distance, default 10 of 64, the usual pHash "same picture" bound) of a kept photo is dropped.
5. **Composition.** Close-ups make a strict majority of the video; the best group photo, when there is one,
   comes last; other group photos go just before it. Close-ups are in the order they were taken.
6. **Too few photos** (fewer than `min_photos`) and the recipient is skipped with a recorded reason.

Close-ups are preferred by fill share, then by how close the others are to the recipient (`rank_friends`);
group photos by closeness, then size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from framefleet.campaign.dataset import Dataset, Exclusion, FaceBox, Friendship, Photo
from framefleet.errors import InputError

Role = Literal["closeup", "group"]
HASH_BITS = 64
MAX_HASH_DISTANCE = 10


@dataclass(frozen=True)
class FriendWeights:
    """How much one unit of each signal counts when ranking friends.

    A co-tag (being in the same photo) says most about closeness and is what a video is made of, so it weighs
    most; a comment takes more effort than a like, so it weighs more than one.
    """

    likes: float = 1.0
    comments: float = 3.0
    cotags: float = 5.0

    def score(self, f: Friendship) -> float:
        return self.likes * f.likes + self.comments * f.comments + self.cotags * f.cotags


DEFAULT_WEIGHTS = FriendWeights()


@dataclass(frozen=True)
class RankedFriend:
    id: str
    score: float


@dataclass(frozen=True)
class ChosenPhoto:
    id: str
    tagged: tuple[str, ...]
    role: Role
    fill: float | None = None  # share of the frame the faces fill; None without face data

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "tagged": list(self.tagged), "role": self.role}


@dataclass(frozen=True)
class Curation:
    id: str
    photos: tuple[ChosenPhoto, ...] = ()
    skipped: str | None = None
    dropped: Mapping[str, str] = field(default_factory=dict)  # photo id -> why it was not used

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "photos": [p.to_dict() for p in self.photos], "skipped": self.skipped}


def exclusions_for(recipient: str, exclusions: Iterable[Exclusion]) -> frozenset[str]:
    """Everyone who must not appear in `recipient`'s video.

    `blocked` and `ex` work both ways (whoever declared it); `hidden` only keeps the hidden person out of the
    video of the person who hid them.
    """
    out: set[str] = set()
    for e in exclusions:
        if e.person == recipient:
            out.add(e.excluded)
        elif e.excluded == recipient and e.reason in ("blocked", "ex"):
            out.add(e.person)
    return frozenset(out)


def rank_friends(
    recipient: str, friendships: Iterable[Friendship], weights: FriendWeights = DEFAULT_WEIGHTS
) -> tuple[RankedFriend, ...]:
    """The recipient's friends, closest first (score = the weighted sum of `FriendWeights`; ties by id)."""
    scores: dict[str, float] = {}
    for f in friendships:
        other = f.other(recipient)
        if other is not None and other != recipient:
            scores[other] = scores.get(other, 0.0) + weights.score(f)
    return tuple(RankedFriend(i, s) for i, s in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])))


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


@dataclass(frozen=True)
class _Candidate:
    photo: Photo
    role: Role
    fill: float | None
    closeness: float
    people: int


def _check_hash(photo_id: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << HASH_BITS:
        raise InputError(f"hashes: {photo_id}: expected a {HASH_BITS}-bit unsigned int, got {value!r}")
    return value


def _assess(
    recipient: str,
    photo: Photo,
    faces: Sequence[FaceBox] | None,
    excluded: frozenset[str],
    closeness: Mapping[str, float],
    min_closeup_fill: float,
) -> _Candidate | str:
    """A candidate, or why the photo cannot be used."""
    tagged = set(photo.tagged)
    named = {f.person for f in faces or () if f.person is not None}
    shown = tagged | named
    bad = sorted(shown & excluded)
    if bad:
        return f"shows excluded {', '.join(bad)}"
    unnamed = sum(1 for f in faces or () if f.person is None)
    if excluded and faces is None:
        return "no face data, so an excluded person cannot be ruled out"
    if excluded and unnamed:
        # counting is not enough: a detector that misses a tagged face and finds an excluded bystander
        # counts right; only faces with a name prove who is in the picture
        return "an unnamed face (it may be an excluded person)"
    if recipient not in shown:
        return "recipient not in photo"
    if shown - {recipient} - closeness.keys():  # a Friends Day video shows friends, not whoever was tagged
        return "shows people who are not the recipient's friends"
    people = len(shown) + max(0, unnamed - len(tagged - named))  # unnamed faces beyond the tags are people too
    if people < 2:
        return "recipient alone"
    fill = None if faces is None else min(1.0, sum(f.area for f in faces))
    score = sum(closeness.get(p, 0.0) for p in shown if p != recipient)
    if people <= 4 and (fill is None or fill >= min_closeup_fill):
        return _Candidate(photo, "closeup", fill, score, people)
    if people >= 4:
        return _Candidate(photo, "group", fill, score, people)
    return f"faces fill {fill:.0%} of the frame, under {min_closeup_fill:.0%} for a close-up"


def curate(
    recipient: str,
    dataset: Dataset,
    *,
    min_photos: int = 4,
    max_photos: int = 10,
    weights: FriendWeights = DEFAULT_WEIGHTS,
    faces: Mapping[str, Sequence[FaceBox]] | None = None,
    hashes: Mapping[str, int] | None = None,
    min_closeup_fill: float = 0.08,
    max_hash_distance: int = MAX_HASH_DISTANCE,
    unreadable: Mapping[str, str] | None = None,
) -> Curation:
    """Choose and order `recipient`'s photos (see the module docstring for the rules).

    `unreadable` maps photo ids whose file is missing or corrupt to why: they are dropped with that reason.
    """
    if dataset.person(recipient) is None:
        raise InputError(f"recipient: unknown person {recipient!r}")
    if not 1 <= min_photos <= max_photos:
        raise InputError(f"min_photos/max_photos: need 1 <= min_photos <= max_photos, got {min_photos}/{max_photos}")
    excluded = exclusions_for(recipient, dataset.exclusions_of(recipient))
    closeness = {f.id: f.score for f in rank_friends(recipient, dataset.friendships_of(recipient), weights)}
    face_map = faces or {}
    hash_map = hashes or {}

    dropped: dict[str, str] = {}
    candidates: list[_Candidate] = []
    bad_files = unreadable or {}
    # only photos that show the recipient can qualify: the index, plus any whose override faces name them
    named_here = {pid for pid, boxes in face_map.items() if any(f.person == recipient for f in boxes)}
    pool = list(dataset.photos_of(recipient))
    if named_here - {p.id for p in pool}:
        pool = [p for p in dataset.photos if p.id in named_here or p in pool]
    for photo in pool:
        if photo.id in bad_files:
            dropped[photo.id] = bad_files[photo.id]
            continue
        boxes = face_map.get(photo.id, photo.faces)
        verdict = _assess(recipient, photo, boxes, excluded, closeness, min_closeup_fill)
        if isinstance(verdict, str):
            if verdict != "recipient not in photo":
                dropped[photo.id] = verdict
        else:
            candidates.append(verdict)

    def preference(c: _Candidate) -> tuple[Any, ...]:
        if c.role == "closeup":
            return (0, c.fill is None, -(c.fill or 0.0), -c.closeness, c.photo.taken_at, c.photo.id)
        return (1, -c.closeness, -c.people, c.photo.taken_at, c.photo.id)

    kept: list[_Candidate] = []
    kept_hashes: list[tuple[str, int]] = []
    for c in sorted(candidates, key=preference):
        h = hash_map.get(c.photo.id)
        if h is not None:
            h = _check_hash(c.photo.id, h)
            twin = next((pid for pid, k in kept_hashes if hamming(h, k) <= max_hash_distance), None)
            if twin is not None:
                dropped[c.photo.id] = f"near-duplicate of {twin}"
                continue
            kept_hashes.append((c.photo.id, h))
        kept.append(c)

    closeups = [c for c in kept if c.role == "closeup"]
    groups = [c for c in kept if c.role == "group"]
    final = groups[:1]
    n_close = min(len(closeups), max_photos - len(final))
    # the best group photo always ends the video; more group photos only while close-ups keep a strict majority
    n_groups = min(len(groups), max(len(final), n_close - 1), max_photos - n_close)
    chosen_close = sorted(closeups[:n_close], key=lambda c: (c.photo.taken_at, c.photo.id))
    chosen_groups = groups[:n_groups]
    middle = sorted(chosen_groups[1:], key=lambda c: (c.photo.taken_at, c.photo.id))
    order = chosen_close + middle + chosen_groups[:1]
    for c in closeups[n_close:] + groups[n_groups:]:
        dropped[c.photo.id] = "not needed (video full or close-ups must stay the majority)"

    if len(order) < min_photos:
        why = f"only {len(order)} usable photo{'s' if len(order) != 1 else ''} (need {min_photos})"
        counts: dict[str, int] = {}
        for reason in dropped.values():
            key = "near-duplicate" if reason.startswith("near-duplicate") else reason
            key = "shows an excluded person" if key.startswith("shows excluded") else key
            counts[key] = counts.get(key, 0) + 1
        if counts:
            why += "; dropped: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        return Curation(recipient, (), why, dropped)
    chosen = tuple(ChosenPhoto(c.photo.id, c.photo.tagged, c.role, c.fill) for c in order)
    return Curation(recipient, chosen, None, dropped)


def curate_all(dataset: Dataset, **options: Any) -> dict[str, Any]:
    """``{"recipients": [...]}`` for everyone in the dataset, in people.jsonl order (options as `curate`)."""
    return {"recipients": [curate(p.id, dataset, **options).to_dict() for p in dataset.people]}
