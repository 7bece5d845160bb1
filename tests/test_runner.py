"""segment_sequence / segment_dataset: PNGs named like the frames, the .done marker, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ovsnet.data.io import DataError, read_label_map, write_frame, write_label_map
from ovsnet.data.sequence import VideoSequence
from ovsnet.inference.runner import DONE_MARKER, segment_dataset, segment_sequence
from ovsnet.inference.segmenter import VideoSegmenter
from tests.tiny_models import FakeModel, make_video, paper_config


def _write_sequence(
    root: Path, name: str, annotate_all: bool = False, first_only_obj1: bool = False
) -> VideoSequence:
    frames, labels = make_video()
    frame_paths, ann = [], {}
    for t, (frame, label) in enumerate(zip(frames, labels, strict=True)):
        path = root / "JPEGImages" / name / f"{t * 5:05d}.png"
        write_frame(path, frame)
        frame_paths.append(path)
        if t == 0 or annotate_all:
            ann[t] = root / "Annotations" / name / f"{t * 5:05d}.png"
            first = np.where(label == 1, 1, 0).astype(np.uint8) if (first_only_obj1 and t == 0) else label
            write_label_map(ann[t], first)
    return VideoSequence(name, frame_paths, ann)


def test_segment_sequence_writes_named_pngs_and_marker(tmp_path: Path) -> None:
    seq = _write_sequence(tmp_path / "data", "squares")
    out = tmp_path / "results" / "squares"
    result = segment_sequence(VideoSegmenter(FakeModel(), config=paper_config()), seq, out, progress=False)
    assert sorted(p.name for p in out.glob("*.png")) == [f"{t * 5:05d}.png" for t in range(5)]
    np.testing.assert_array_equal(read_label_map(out / "00000.png"), seq.first_frame_mask)
    assert set(np.unique(read_label_map(out / "00020.png"))) == {0, 1, 2}
    assert result.num_frames == 5 and result.fps > 0 and result.path_counts["iou"] == 8
    assert len(result.decisions) == 4
    assert json.loads((out / DONE_MARKER).read_text())["num_frames"] == 5


def test_frame_iterator_with_progress_and_names(tmp_path: Path) -> None:
    frames, labels = make_video(num_frames=3)
    result = segment_sequence(
        VideoSegmenter(FakeModel()),
        iter(frames),
        tmp_path,
        first_mask=labels[0],
        frame_names=["a", "b", "c"],
        progress=True,
    )
    assert result.num_frames == 3
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["a.png", "b.png", "c.png"]
    with pytest.raises(DataError, match="first_mask"):
        segment_sequence(VideoSegmenter(FakeModel()), iter(frames), tmp_path / "x", progress=False)


def test_on_result_gets_each_frame_with_the_labels_written(tmp_path: Path) -> None:
    """The overlay video is drawn from these: every frame in order, with exactly its PNG's labels."""
    frames, labels = make_video(num_frames=4)
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    segment_sequence(
        VideoSegmenter(FakeModel()),
        iter(frames),
        tmp_path,
        first_mask=labels[0],
        progress=False,
        on_result=lambda frame, result: seen.append((frame, result)),
    )
    assert len(seen) == 4
    for index, (frame, result) in enumerate(seen):
        assert frame is frames[index]
        np.testing.assert_array_equal(result, read_label_map(tmp_path / f"{index:05d}.png"))


def test_new_objects_from_later_annotations(tmp_path: Path) -> None:
    seq = _write_sequence(tmp_path / "data", "late", annotate_all=True, first_only_obj1=True)
    segmenter = VideoSegmenter(FakeModel())
    segment_sequence(segmenter, seq, tmp_path / "out", progress=False)
    assert segmenter.object_ids == [1, 2]
    assert 2 in np.unique(read_label_map(tmp_path / "out" / "00020.png"))


def test_segment_dataset_resumes(tmp_path: Path) -> None:
    seqs = [_write_sequence(tmp_path / "data", n) for n in ("a", "b")]
    made: list[FakeModel] = []

    def make() -> VideoSegmenter:
        made.append(FakeModel())
        return VideoSegmenter(made[-1], config=paper_config())

    results = segment_dataset(make, seqs, tmp_path / "res", progress=False)
    assert [r.skipped for r in results] == [False, False] and len(made) == 1
    assert made[0].detect_calls == 10
    (tmp_path / "res" / "b" / "00015.png").unlink()  # b incomplete: only b is redone
    again = segment_dataset(make, seqs, tmp_path / "res", progress=False)
    assert [r.skipped for r in again] == [True, False]
    assert again[0].num_frames == 5 and again[0].decisions[0] == {1: "iou", 2: "iou"}
    assert made[-1].detect_calls == 5 and (tmp_path / "res" / "b" / "00015.png").is_file()
    done = segment_dataset(make, seqs, tmp_path / "res", progress=False)
    assert all(r.skipped for r in done) and len(made) == 2  # nothing to do: no model built
    forced = segment_dataset(make, seqs, tmp_path / "res", skip_done=False, progress=False)
    assert not any(r.skipped for r in forced)


def test_segment_dataset_hands_one_broken_video_to_on_failure_and_goes_on(tmp_path: Path) -> None:
    seqs = [_write_sequence(tmp_path / "data", n) for n in ("a", "b", "c")]
    seqs[1].frame_paths[2].write_bytes(b"not an image")

    def make() -> VideoSegmenter:
        return VideoSegmenter(FakeModel(), config=paper_config())

    with pytest.raises(DataError, match=seqs[1].frame_paths[2].name):
        segment_dataset(make, seqs, tmp_path / "strict", progress=False)
    failed: list[tuple[str, Exception]] = []
    results = segment_dataset(
        make, seqs, tmp_path / "lenient", progress=False, on_failure=lambda s, e: failed.append((s.name, e))
    )
    assert [r.name for r in results] == ["a", "c"] and [name for name, _ in failed] == ["b"]
    assert isinstance(failed[0][1], DataError) and not (tmp_path / "lenient" / "b" / DONE_MARKER).exists()


def test_lost_while_visible_counts_absent_decisions_on_visible_objects(tmp_path: Path) -> None:
    from ovsnet.data.sequence import VideoSequence
    from ovsnet.evaluation.scoring import lost_while_visible
    from ovsnet.inference.runner import SequenceResult

    frames, annotations = [], {}
    for i in range(4):
        labels = np.zeros((8, 8), np.uint8)
        labels[:2, :2] = 1
        if i < 2:  # object 2 leaves after frame 1
            labels[5:, 5:] = 2
        write_frame(tmp_path / f"{i:05d}.jpg", np.zeros((8, 8, 3), np.uint8))
        write_label_map(tmp_path / f"{i:05d}.png", labels)
        frames.append(tmp_path / f"{i:05d}.jpg")
        annotations[i] = tmp_path / f"{i:05d}.png"
    seq = VideoSequence("s", frames, annotations)
    decisions = [{1: "flow", 2: "absent"}, {1: "absent", 2: "absent"}, {1: "iou", 2: "flow"}]
    result = SequenceResult("s", 4, 1.0, 4.0, decisions=decisions)
    # frame 1: object 2 visible but absent (1); frame 2: object 1 visible, absent (1), object 2 gone (0)
    assert lost_while_visible([seq], [result]) == {"s": (2, 4)}
