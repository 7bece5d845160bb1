"""Model-free baselines: the trackers' outputs, the results layout they write, their scores and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ovsnet.baselines import BASELINE_FILE, main, run_baselines
from ovsnet.data.davis import load_davis
from ovsnet.data.io import DataError, read_label_map
from ovsnet.data.synthetic import generate_dataset
from ovsnet.inference.propagation import CopyFirstMask, FlowPropagator, propagate_labels


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(
        tmp_path_factory.mktemp("bl") / "videos", num_sequences=4, num_frames=6, size=(48, 64), progress=False
    )


class ShiftFlow:
    """Backward flow of -1 in x: each pixel comes from its left neighbour, so content moves one pixel right."""

    def __call__(self, prev, rgb):
        flow = np.zeros((*rgb.shape[:2], 2), dtype=np.float32)
        flow[..., 0] = -1.0
        return flow


def test_trackers_copy_and_propagate() -> None:
    frame = np.zeros((8, 10, 3), dtype=np.uint8)
    labels = np.zeros((8, 10), dtype=np.uint8)
    labels[2:5, 2:5] = 1
    labels[6, 8] = 255  # void is not an object
    copy = CopyFirstMask()
    copy.start(frame, labels)
    np.testing.assert_array_equal(copy.step(frame), np.where(labels == 1, 1, 0))
    flow = FlowPropagator(ShiftFlow())
    flow.start(frame, labels)
    moved = flow.step(frame)
    np.testing.assert_array_equal(moved[2:5, 3:6], 1)
    assert moved.sum() == 9 and flow.path_counts["flow"] == 1 and flow.object_ids == [1]
    # an object moved out of the frame is reported absent
    gone = FlowPropagator(lambda p, c: np.full((8, 10, 2), -20.0, dtype=np.float32))
    gone.start(frame, labels)
    assert not gone.step(frame).any() and gone.path_counts["absent"] == 1
    with pytest.raises(DataError, match="empty"):
        copy.start(frame, np.zeros((8, 10), dtype=np.uint8))
    with pytest.raises(DataError, match="mask size"):
        copy.start(frame, np.ones((4, 4), dtype=np.uint8))


def test_propagate_labels_keeps_ids_and_sizes() -> None:
    import torch

    labels = torch.zeros(6, 6, dtype=torch.uint8)
    labels[0:2, 0:2], labels[4:6, 4:6] = 3, 7
    out = propagate_labels(labels, [3, 7], np.zeros((6, 6, 2), dtype=np.float32))
    assert torch.equal(out, labels)


def test_run_baselines_writes_results_and_scores(root: Path, tmp_path: Path) -> None:
    sequences = list(load_davis(root, split="val"))
    scores = run_baselines(sequences, tmp_path, {"dis": {"backend": "dis"}}, workers=1)
    assert set(scores) == {"copy", "flow"} and all(0 <= s["J&F-Mean"] <= 1 for s in scores.values())
    for name in ("copy", "flow"):
        for seq in sequences:
            pngs = sorted((tmp_path / name / seq.name).glob("*.png"))
            assert [p.stem for p in pngs] == sorted(seq.frame_names)
            np.testing.assert_array_equal(read_label_map(pngs[0]), seq.first_frame_mask)
    assert json.loads((tmp_path / BASELINE_FILE).read_text())["scores"] == scores
    # the first mask is exact on frame 0 only; moving objects make copy score below a perfect 1
    assert scores["copy"]["J&F-Mean"] < 1.0


def test_cli_prints_table_and_names_bad_folders(root: Path, tmp_path: Path, capsys) -> None:
    scores = main(
        [str(root), "--out", str(tmp_path / "out"), "--flows", "dis", "farneback", "--workers", "1"]
    )
    assert set(scores) == {"copy", "flow", "flow:farneback"}
    printed = capsys.readouterr().out
    assert "J&F-Mean" in printed and "flow:farneback" in printed
    with pytest.raises(SystemExit, match="missing"):
        main([str(tmp_path / "missing"), "--out", str(tmp_path / "o2")])
