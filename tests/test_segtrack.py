"""ovsnet.data.segtrack: single- and multi-object SegTrack v2 sequences, overlap rule, listing, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovsnet.data.io import DataError
from ovsnet.data.segtrack import SegTrackSequence, load_segtrack, segtrack_sequence
from tests.davis_fixtures import H, W, box_mask, write_mask, write_segtrack_sequence

N = 3


def _single(root: Path, name: str = "birdfall", **kwargs: object) -> list[np.ndarray]:
    masks = [box_mask(5 + i, 10, 20 + i, 30) for i in range(N)]
    write_segtrack_sequence(root, name, [masks], **kwargs)  # type: ignore[arg-type]
    return masks


def _multi(root: Path, name: str = "penguin", **kwargs: object) -> list[list[np.ndarray]]:
    objects = [
        [box_mask(0, 0, 30, 40) for _ in range(N)],
        [box_mask(20, 30, 50, 70) for _ in range(N)],  # overlaps object 1 on rows 20-29, cols 30-39
        [box_mask(45, 60, 64, 80) for _ in range(N)],  # overlaps object 2 on rows 45-49, cols 60-69
    ]
    write_segtrack_sequence(root, name, objects, **kwargs)  # type: ignore[arg-type]
    return objects


def test_single_object_sequence(tmp_path: Path) -> None:
    masks = _single(tmp_path)
    (seq,) = load_segtrack(tmp_path)
    assert isinstance(seq, SegTrackSequence) and seq.name == "birdfall"
    assert len(seq) == N and seq.annotated_indices == list(range(N))
    assert seq.frame_names == [f"birdfall_{i:05d}" for i in range(N)]
    for i in range(N):
        labels = seq.label_map(i)
        assert labels.dtype == np.uint8 and labels.shape == (H, W)
        np.testing.assert_array_equal(labels, masks[i].astype(np.uint8))
    assert seq.object_ids == [1]
    assert seq.frame(0).shape == (H, W, 3)


def test_multi_object_ids_and_later_object_wins_overlap(tmp_path: Path) -> None:
    objects = _multi(tmp_path)
    (seq,) = load_segtrack(tmp_path)
    labels = seq.label_map(1)
    assert seq.object_ids == [1, 2, 3]
    assert labels[5, 5] == 1 and labels[25, 35] == 2 and labels[47, 65] == 3 and labels[60, 10] == 0
    expected = np.zeros((H, W), np.uint8)
    for k, masks in enumerate(objects, start=1):
        expected[masks[1]] = k
    np.testing.assert_array_equal(labels, expected)
    merged = load_segtrack(tmp_path, single_object=True)[0]
    np.testing.assert_array_equal(merged.label_map(1), (expected > 0).astype(np.uint8))


def test_mixed_extensions_and_rgb_masks_match_by_stem(tmp_path: Path) -> None:
    masks = _single(tmp_path, "monkeydog", frame_ext=".bmp", mask_ext=".png", rgb_masks=True)
    (seq,) = load_segtrack(tmp_path)
    assert seq.frame_paths[0].suffix == ".bmp"
    np.testing.assert_array_equal(seq.label_map(2), masks[2].astype(np.uint8))


def test_masks_with_other_names_pair_in_sorted_order(tmp_path: Path) -> None:
    masks = _single(tmp_path, "frog")
    gt = tmp_path / "GroundTruth/frog"
    for i, path in enumerate(sorted(gt.iterdir())):
        path.rename(gt / f"mask{i:03d}.png")
    (seq,) = load_segtrack(tmp_path)
    np.testing.assert_array_equal(seq.label_map(2), masks[2].astype(np.uint8))


def test_sequences_sorted_or_in_all_txt_order(tmp_path: Path) -> None:
    _single(tmp_path, "worm")
    _single(tmp_path, "bmx")
    _single(tmp_path, "girl")
    assert [s.name for s in load_segtrack(tmp_path)] == ["bmx", "girl", "worm"]
    (tmp_path / "ImageSets").mkdir()
    (tmp_path / "ImageSets/all.txt").write_text("*worm\n*bmx\n\n")
    assert [s.name for s in load_segtrack(tmp_path)] == ["worm", "bmx"]


def test_per_sequence_frame_list(tmp_path: Path) -> None:
    _single(tmp_path, "girl")
    (tmp_path / "ImageSets").mkdir()
    (tmp_path / "ImageSets/girl.txt").write_text("girl/\ngirl_00002\ngirl_00000\n")
    (seq,) = load_segtrack(tmp_path)
    assert seq.frame_names == ["girl_00002", "girl_00000"]
    (tmp_path / "ImageSets/girl.txt").write_text("girl/\ngirl_00009\n")
    with pytest.raises(DataError, match="girl_00009"):
        load_segtrack(tmp_path)


def test_threshold_for_soft_masks(tmp_path: Path) -> None:
    _single(tmp_path, "soldier")
    soft = np.zeros((H, W), np.uint8)
    soft[:10] = 100
    soft[10:20] = 255
    Image.fromarray(soft, mode="L").save(tmp_path / "GroundTruth/soldier/soldier_00000.png")
    assert load_segtrack(tmp_path)[0].label_map(0)[:20].all()
    strict = load_segtrack(tmp_path, threshold=127)[0].label_map(0)
    assert not strict[:10].any() and strict[10:20].all()


# ---------------------------------------------------------------- errors


def test_missing_mask_names_the_expected_file(tmp_path: Path) -> None:
    _multi(tmp_path)
    (tmp_path / "GroundTruth/penguin/2/penguin_00001.png").unlink()
    expected = r"'penguin'.*penguin_00001.*GroundTruth/penguin/2/penguin_00001\.png"
    with pytest.raises(DataError, match=expected):
        load_segtrack(tmp_path)


def test_missing_root_folders_and_ground_truth(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothing"):
        load_segtrack(tmp_path / "nothing")
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(DataError, match="JPEGImages"):
        load_segtrack(tmp_path / "empty")
    _single(tmp_path, "cheetah")
    shutil.rmtree(tmp_path / "GroundTruth/cheetah")
    with pytest.raises(DataError, match=r"'cheetah'.*GroundTruth/cheetah"):
        load_segtrack(tmp_path)
    (tmp_path / "ImageSets").mkdir()
    (tmp_path / "ImageSets/all.txt").write_text("*ghost\n")
    with pytest.raises(DataError, match=r"'ghost'.*JPEGImages/ghost"):
        load_segtrack(tmp_path)


def test_bad_object_folder_and_mask_size(tmp_path: Path) -> None:
    _multi(tmp_path)
    (tmp_path / "GroundTruth/penguin/extra").mkdir()
    with pytest.raises(DataError, match="extra"):
        load_segtrack(tmp_path)
    (tmp_path / "GroundTruth/penguin/extra").rmdir()
    write_mask(tmp_path / "GroundTruth/penguin/3/penguin_00002.png", np.ones((H, W + 4), bool))
    seq = segtrack_sequence(tmp_path, "penguin")
    seq.label_map(1)
    with pytest.raises(DataError, match=r"penguin/3/penguin_00002\.png.*size"):
        seq.label_map(2)


def test_mask_size_differs_from_frames(tmp_path: Path) -> None:
    _single(tmp_path, "parachute")
    write_mask(tmp_path / "GroundTruth/parachute/parachute_00001.png", np.ones((H - 2, W), bool))
    (seq,) = load_segtrack(tmp_path)
    with pytest.raises(DataError, match=r"parachute_00001\.png.*size"):
        seq.label_map(1)


def test_corrupt_mask_names_the_file(tmp_path: Path) -> None:
    _single(tmp_path, "hummingbird")
    (tmp_path / "GroundTruth/hummingbird/hummingbird_00000.png").write_bytes(b"junk")
    (seq,) = load_segtrack(tmp_path)
    with pytest.raises(DataError, match="hummingbird_00000.png"):
        seq.label_map(0)
