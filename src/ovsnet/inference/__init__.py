"""One-pass online inference: flow, Re-ID memory, association cascade, per-video segmenter, runner.

``SegmenterModel`` is the interface a network implements to stand behind the segmenter.
"""

from ovsnet.inference.cascade import CascadeConfig, Decision, TrackState, associate
from ovsnet.inference.flow import build_flow, warp
from ovsnet.inference.memory import ReIDBank
from ovsnet.inference.protocol import FrameDetections, SegmenterModel
from ovsnet.inference.runner import SequenceResult, segment_dataset, segment_sequence
from ovsnet.inference.segmenter import VideoSegmenter

__all__ = [
    "CascadeConfig",
    "Decision",
    "FrameDetections",
    "ReIDBank",
    "SegmenterModel",
    "SequenceResult",
    "TrackState",
    "VideoSegmenter",
    "associate",
    "build_flow",
    "segment_dataset",
    "segment_sequence",
    "warp",
]
