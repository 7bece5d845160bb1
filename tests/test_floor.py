"""The segmenter's floor: with a detector that finds nothing, or one that returns random boxes, the cascade's
J&F equals the model-free flow propagation's on the synthetic validation videos (within 0.01); the default
appearance correction (first-frame ImageNet features, no detector involved) lifts it well above."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from ovsnet.baselines import run_baselines
from ovsnet.data.davis import load_davis
from ovsnet.data.synthetic import generate_dataset
from ovsnet.inference.flow import DISFlow
from ovsnet.inference.runner import segment_dataset
from ovsnet.inference.segmenter import VideoSegmenter
from ovsnet.inference.settings import resolve
from ovsnet.metrics.davis import evaluate_sequences
from ovsnet.models.ovsnet import build_ovsnet
from tests.tiny_models import TINY_MODEL

FLOW = {"backend": "dis"}  # the default flow (DIS medium, at most 240 rows)


class ScriptedDetector(torch.nn.Module):
    """A real (random) OVSNet whose detections are replaced: none at all, or random boxes with random
    scores, masks and embeddings; its features, ``embed`` and MGA ``refine`` stay the network's own."""

    def __init__(self, mode: str, seed: int = 0) -> None:
        super().__init__()
        self.net = build_ovsnet(**TINY_MODEL).eval()
        self.mode = mode
        self.gen = torch.Generator().manual_seed(seed)

    def detect(self, images):
        out = []
        for det in self.net.detect(images):
            h, w = det.features.original_size
            n = 0 if self.mode == "none" else 30
            xy = torch.rand(n, 2, generator=self.gen) * torch.tensor([w, h])
            wh = (torch.rand(n, 2, generator=self.gen) * 0.6 + 0.05) * torch.tensor([w, h])
            boxes = torch.cat([xy, (xy + wh).minimum(torch.tensor([w, h]))], dim=1)
            out.append(
                dataclasses.replace(
                    det,
                    boxes=boxes,
                    scores=torch.rand(n, generator=self.gen) * 0.5 + 0.5,
                    labels=torch.ones(n, dtype=torch.int64),
                    mask_probs=torch.rand(n, 28, 28, generator=self.gen),
                    embeddings=torch.randn(n, 32, generator=self.gen) * 3.0,
                )
            )
        return out

    def embed(self, features, boxes):
        return torch.randn(len(boxes), 32, generator=self.gen) * 3.0

    def refine_box_masks(self, features, boxes, mask_probs):
        return self.net.refine_box_masks(features, boxes, mask_probs)

    def refine_image_masks(self, features, boxes, image_probs):
        return self.net.refine_image_masks(features, boxes, image_probs)

    def paste_masks(self, boxes, mask_probs, image_size):
        return self.net.paste_masks(boxes, mask_probs, image_size)


@pytest.fixture(scope="module")
def val_videos(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = generate_dataset(
        tmp_path_factory.mktemp("floor") / "synthetic",
        num_sequences=4,
        num_frames=12,
        size=(64, 96),
        seed=3,
        val_fraction=0.5,
        progress=False,
    )
    return list(load_davis(root, split="val"))


@pytest.fixture(scope="module")
def flow_baseline(val_videos: list, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_baselines(val_videos, tmp_path_factory.mktemp("baselines"), {"dis": FLOW}, workers=1)


@pytest.mark.slow
@pytest.mark.parametrize("appearance", [None, "efficientnet_lite0"])
@pytest.mark.parametrize("mode", ["none", "random"])
def test_segmenter_never_falls_below_flow_propagation(
    mode: str, appearance: str | None, val_videos: list, flow_baseline: dict, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = ScriptedDetector(mode)
    flow_kwargs = {k: v for k, v in FLOW.items() if k != "backend"}
    config = resolve(overrides={"cascade.min_candidate_score": 0.5, "appearance.backbone": appearance})

    def make() -> VideoSegmenter:
        return VideoSegmenter(model, DISFlow(**flow_kwargs), config)

    results = segment_dataset(make, val_videos, tmp_path, progress=False)
    score = evaluate_sequences(val_videos, tmp_path, workers=1).scores["J&F-Mean"]
    counts = sum((r.path_counts.get("iou", 0) + r.path_counts.get("reid", 0)) for r in results)
    assert counts == 0, f"{mode}: a scripted detection was accepted ({counts} times)"
    assert flow_baseline["flow"]["J&F-Mean"] > flow_baseline["copy"]["J&F-Mean"]
    if appearance is None:  # the cascade alone: exactly the propagation
        assert score == pytest.approx(flow_baseline["flow"]["J&F-Mean"], abs=0.01)
    else:  # appearance pulls the drifting outlines back to the first frame's objects
        assert score > flow_baseline["flow"]["J&F-Mean"] + 0.1
