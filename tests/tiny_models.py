"""The tiny OVSNet settings shared by the tests that build a real (random-weight) model.

An untrained head scores every proposal near 0.5, so the detection and proposal caps keep 64-96 px tests from
pushing a hundred boxes per frame through the mask and MGA heads.
"""

from __future__ import annotations

TINY_MODEL: dict[str, object] = {
    "backbone": "resnet18",
    "norm": "bn",
    "weights": None,
    "min_size": 64,
    "max_size": 96,
    "mga_channels": 16,
    "reid_hidden_dim": 32,
    "box_detections_per_img": 10,
    "rpn_pre_nms_top_n_test": 100,
    "rpn_post_nms_top_n_test": 30,
}

# the same network with small training-time proposal and RoI batches (2-step fits)
TINY_TRAIN_MODEL: dict[str, object] = {
    **TINY_MODEL,
    "rpn_pre_nms_top_n_train": 100,
    "rpn_post_nms_top_n_train": 50,
    "box_batch_size_per_image": 32,
}
