"""What a vote may hold, checked before anything is stored (pure).

A vote is `{"item": id, "left_score": 1..5, "right_score": 1..5, "preference": "left"|"right"|"same",
"artifacts": [names from ARTIFACTS]}`. Anything else is a `BadVote` (HTTP 422) that names the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from framefleet.errors import InputError

PREFERENCES = ("left", "right", "same")
ARTIFACTS = ("blur", "ringing", "flicker", "colour shift", "faces or text changed", "other")
SCORES = (1, 2, 3, 4, 5)  # the ACR scale: bad, poor, fair, good, excellent
FIELDS = ("item", "left_score", "right_score", "preference", "artifacts")


class BadVote(InputError):
    """A vote whose fields are missing, of the wrong type or out of range."""

    http_status = 422
    reason = "invalid_vote"


@dataclass(frozen=True)
class Ballot:
    item: str
    left_score: int
    right_score: int
    preference: str
    artifacts: tuple[str, ...] = ()


def _score(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value not in SCORES:
        raise BadVote(f"{name} must be an integer from 1 (bad) to 5 (excellent), got {value!r}")
    return value


def parse_ballot(payload: dict[str, Any]) -> Ballot:
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        raise BadVote(f"unknown field(s) {', '.join(map(repr, unknown))}; a vote holds {', '.join(FIELDS)}")
    item = payload.get("item")
    if not isinstance(item, str) or not item or len(item) > 64:
        raise BadVote(f"item must be the id of the item (a string), got {item!r}")
    left, right = _score(payload, "left_score"), _score(payload, "right_score")
    preference = payload.get("preference")
    if preference not in PREFERENCES:
        raise BadVote(f"preference must be one of {', '.join(PREFERENCES)}, got {preference!r}")
    artifacts = payload.get("artifacts", [])
    if not isinstance(artifacts, list) or not all(isinstance(a, str) for a in artifacts):
        raise BadVote(f"artifacts must be a list of names, got {artifacts!r}")
    bad = [a for a in artifacts if a not in ARTIFACTS]
    if bad:
        raise BadVote(f"unknown artifact(s) {', '.join(map(repr, bad))}; use {', '.join(map(repr, ARTIFACTS))}")
    ordered = tuple(a for a in ARTIFACTS if a in artifacts)  # canonical order, each once
    return Ballot(item, left, right, str(preference), ordered)


__all__ = ["ARTIFACTS", "PREFERENCES", "SCORES", "BadVote", "Ballot", "parse_ballot"]
