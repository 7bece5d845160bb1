"""One-pass online inference: flow, Re-ID memory, association cascade, per-video segmenter, runner.

``SegmenterModel`` is the interface a network implements to stand behind the segmenter.
"""

from ovsnet.inference.cascade import Decision, TrackState, associate
from ovsnet.inference.flow import build_flow, warp
from ovsnet.inference.memory import ReIDBank
from ovsnet.inference.protocol import FrameDetections, SegmenterModel
from ovsnet.inference.runner import SequenceResult, segment_dataset, segment_sequence
from ovsnet.inference.segmenter import VideoSegmenter
from ovsnet.inference.settings import InferenceSettings, resolve

__all__ = [
    "Decision",
    "FrameDetections",
    "InferenceSettings",
    "ReIDBank",
    "SegmenterModel",
    "SequenceResult",
    "TrackState",
    "VideoSegmenter",
    "associate",
    "build_flow",
    "resolve",
    "segment_dataset",
    "segment_sequence",
    "warp",
]
