"""Campaign: a personal video for each person in a dataset of people, friendships, exclusions and photos.

`dataset` reads and validates the JSONL folder; `curate` (pure) picks and orders each person's photos.
"""

from __future__ import annotations

from framefleet.campaign.curate import Curation, FriendWeights, curate, curate_all, exclusions_for, rank_friends
from framefleet.campaign.dataset import Dataset, Exclusion, FaceBox, Friendship, Person, Photo, load_dataset

__all__ = [
    "Curation",
    "Dataset",
    "Exclusion",
    "FaceBox",
    "FriendWeights",
    "Friendship",
    "Person",
    "Photo",
    "curate",
    "curate_all",
    "exclusions_for",
    "load_dataset",
    "rank_friends",
]
