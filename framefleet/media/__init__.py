"""Media layer: FFmpeg through PyAV. Probe, decode to frame iterators, encode, ABR ladder, split/join at
keyframes, images with a decompression-bomb guard. Knows nothing of models or the database."""

from framefleet.media.decode import TimedFrame, iter_batches, iter_frames, iter_timed_frames
from framefleet.media.encode import EncodeSettings, encode_frames, transcode
from framefleet.media.image import ImageInfo, identify_image, load_image
from framefleet.media.ladder import Rung, plan_ladder, rung_size
from framefleet.media.probe import AudioInfo, MediaInfo, VideoInfo, check_file, probe
from framefleet.media.samples import SAMPLES, sample_path
from framefleet.media.segments import choose_cuts, join_segments, keyframe_times, split_video

__all__ = [
    "SAMPLES",
    "AudioInfo",
    "EncodeSettings",
    "ImageInfo",
    "MediaInfo",
    "Rung",
    "TimedFrame",
    "VideoInfo",
    "check_file",
    "choose_cuts",
    "encode_frames",
    "identify_image",
    "iter_batches",
    "iter_frames",
    "iter_timed_frames",
    "join_segments",
    "keyframe_times",
    "load_image",
    "plan_ladder",
    "probe",
    "rung_size",
    "sample_path",
    "split_video",
    "transcode",
]
