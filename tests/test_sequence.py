"""ovsnet.data.sequence.VideoSequence: lazy frames, annotations, single-object merge, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ovsnet.data.io import DataError, write_frame, write_label_map
from ovsnet.data.sequence import VideoSequence, object_ids_of
from tests.davis_fixtures import H, W, make_frame, make_labels


def _sequence(
    tmp_path: Path,
    num_frames: int = 4,
    annotated: tuple[int, ...] = (0, 2),
    num_objects: int = 2,
    **kwargs: object,
) -> VideoSequence:
    frames, annotations = [], {}
    for i in range(num_frames):
        frames.append(tmp_path / f"{i:05d}.jpg")
        write_frame(frames[-1], make_frame(i))
    for i in annotated:
        annotations[i] = tmp_path / f"{i:05d}.png"
        write_label_map(annotations[i], make_labels(i, num_objects, void=True))
    return VideoSequence("clip", frames, annotations, **kwargs)  # type: ignore[arg-type]


def test_frames_annotations_and_properties(tmp_path: Path) -> None:
    seq = _sequence(tmp_path)
    assert len(seq) == 4
    assert seq.frame_names == ["00000", "00001", "00002", "00003"]
    assert seq.annotated_indices == [0, 2]
    assert seq.has_label(2) and not seq.has_label(1)
    assert seq.size == (H, W)
    frame = seq.frame(3)
    assert frame.dtype == np.uint8 and frame.shape == (H, W, 3)
    assert abs(int(frame[..., 0].mean()) - (37 * 3)) <= 3  # it is frame 3 (colour encodes the index)
    assert len(list(seq.frames())) == 4
    assert seq.label_map(1) is None
    np.testing.assert_array_equal(seq.label_map(2), make_labels(2, 2, void=True))
    np.testing.assert_array_equal(seq.first_frame_mask, make_labels(0, 2, void=True))
    assert seq.object_ids == [1, 2]
    assert "clip" in repr(seq) and "frames=4" in repr(seq)


def test_single_object_merges_ids_and_keeps_void(tmp_path: Path) -> None:
    seq = _sequence(tmp_path, num_objects=3, single_object=True)
    labels = seq.label_map(0)
    original = make_labels(0, 3, void=True)
    assert set(np.unique(labels)) == {0, 1, 255}
    np.testing.assert_array_equal(labels == 255, original == 255)
    np.testing.assert_array_equal(labels == 1, (original > 0) & (original != 255))
    assert seq.object_ids == [1]


def test_size_mismatch_names_the_annotation_file(tmp_path: Path) -> None:
    seq = _sequence(tmp_path, annotated=(0,))
    write_label_map(tmp_path / "00000.png", np.zeros((H // 2, W), np.uint8))
    with pytest.raises(DataError, match=r"00000\.png.*size"):
        seq.label_map(0)


def test_invalid_construction_and_missing_first_annotation(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        VideoSequence("empty", [])
    write_frame(tmp_path / "a.jpg", make_frame(0))
    with pytest.raises(DataError, match="frame 5"):
        VideoSequence("short", [tmp_path / "a.jpg"], {5: tmp_path / "x.png"})
    seq = VideoSequence("unlabelled", [tmp_path / "a.jpg"])
    with pytest.raises(DataError, match="unlabelled"):
        _ = seq.first_frame_mask


def test_missing_frame_file_is_reported_when_read(tmp_path: Path) -> None:
    seq = VideoSequence("gone", [tmp_path / "00000.jpg"])
    with pytest.raises(DataError, match="00000.jpg"):
        seq.frame(0)


def test_subclass_can_override_label_reading(tmp_path: Path) -> None:
    class Constant(VideoSequence):
        def _read_label_map(self, index: int) -> np.ndarray:
            return np.full(self.size, 4, np.uint8)

    write_frame(tmp_path / "a.jpg", make_frame(0))
    seq = Constant("c", [tmp_path / "a.jpg"], {0: tmp_path / "unused.png"})
    assert seq.object_ids == [4]


def test_object_ids_of_skips_background_and_void() -> None:
    labels = np.array([[0, 3, 255], [1, 3, 0]], dtype=np.uint8)
    assert object_ids_of(labels) == [1, 3]
    assert object_ids_of(np.zeros((2, 2), np.uint8)) == []
