"""ρ_reid calibration: distances of a model's embeddings on annotated videos, and the threshold between them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ovsnet.data.io import write_frame, write_label_map
from ovsnet.data.sequence import VideoSequence
from ovsnet.inference.calibration import calibrate_rho_reid, reid_distances
from tests.tiny_models import FakeModel, make_video


def test_threshold_separates_positives_from_negatives() -> None:
    result = calibrate_rho_reid(np.array([0.5, 0.8, 1.0]), np.array([2.0, 2.5, 3.0]))
    assert result.rho_reid == pytest.approx(1.5)  # halfway between the farthest positive and closest negative
    assert (result.true_positive_rate, result.false_positive_rate) == (1.0, 0.0)
    assert (result.positives, result.negatives) == (3, 3)
    # 1.5 (TPR 2/3, FPR 0) and 2.6 (TPR 1, FPR 1/3) separate equally well: the tie goes to the larger
    overlapping = calibrate_rho_reid(np.array([0.5, 1.0, 2.2]), np.array([2.0, 3.0, 4.0]))
    assert overlapping.rho_reid == pytest.approx(2.6) and overlapping.false_positive_rate == pytest.approx(
        1 / 3
    )
    assert calibrate_rho_reid(np.array([1.0, 2.0]), np.array([])).rho_reid == pytest.approx(1.95)
    with pytest.raises(ValueError, match="no positive"):
        calibrate_rho_reid(np.array([]), np.array([1.0]))


def test_distances_of_a_model_on_a_video(tmp_path: Path) -> None:
    frames, labels = make_video(num_frames=6)
    paths, annotations = [], {}
    for i, (frame, label) in enumerate(zip(frames, labels, strict=True)):
        write_frame(tmp_path / f"{i:05d}.jpg", frame)
        write_label_map(tmp_path / f"{i:05d}.png", label)
        paths.append(tmp_path / f"{i:05d}.jpg")
        annotations[i] = tmp_path / f"{i:05d}.png"
    seq = VideoSequence("squares", paths, annotations)
    positives, negatives = reid_distances(FakeModel(), [seq], frame_stride=1)
    # two objects x five later frames: each object's own square is a positive, the other square a negative
    assert len(positives) == len(negatives) == 10
    assert positives.max() < negatives.min()  # FakeModel embeds colour: red and green squares differ
    rho = calibrate_rho_reid(positives, negatives).rho_reid
    assert positives.max() < rho < negatives.min()
