"""Campaign: a personal video for each person in a dataset of people, friendships, exclusions and photos.

Pure (importable without OpenCV, PyAV or Ray; re-exported here): `dataset` (JSONL, CSV or Parquet tables),
`curate` (which photos, in which order), `timeline` (on-screen times, Ken Burns windows), `health` (blocklist
and throttle), `rollout` (release waves by time zone). With pixels and processes: `vision` (Haar faces, pHash),
`render` (the video), `work` (one recipient), `runner` + `pools` / `ray_pool` (a whole run), `capacity` (the
plan), `delivery` (the video only from the local day on), `synth` (a synthetic dataset), `commands` (the CLI).
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
