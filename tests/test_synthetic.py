"""The synthetic DAVIS-layout generator: layout, determinism, and the hard cases it promises (occlusion,
leave-and-re-enter, distractors), read back from the written files where it matters."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ovsnet.data.io import DAVIS_PALETTE, DataError, list_frames, read_frame, read_label_map
from ovsnet.data.sequence import VideoSequence
from ovsnet.data.synthetic import (
    SyntheticConfig,
    SyntheticFrame,
    build_meta,
    dataset_style,
    generate_dataset,
    main,
    make_video,
    sequence_name,
)

SIZE = (64, 80)


class Rendered:
    """A video rendered the way ``generate_dataset`` renders it: every frame, and its meta record."""

    def __init__(self, **kwargs: object) -> None:
        video = make_video(**kwargs)
        self.object_ids = video.object_ids
        self.frame_list: list[SyntheticFrame] = list(video)
        self.meta = build_meta(video, self.frame_list)
        self.frames = [f.image for f in self.frame_list]
        self.labels = [f.labels for f in self.frame_list]
        self.distractor_masks = [f.distractor_mask for f in self.frame_list]


def _sequence(root: Path, name: str) -> VideoSequence:
    frames = list_frames(root / "JPEGImages" / "480p" / name)
    labels = list_frames(root / "Annotations" / "480p" / name)
    return VideoSequence(name, frames, dict(enumerate(labels)))


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    # a plain list for size, as Hydra's generate_synthetic config passes it
    return generate_dataset(root, num_sequences=3, num_frames=6, size=list(SIZE), seed=0, progress=False)


def test_davis_layout_and_names(dataset: Path) -> None:
    names = [sequence_name(i) for i in range(3)]
    assert names == ["synth-000", "synth-001", "synth-002"]
    train = (dataset / "ImageSets/2017/train.txt").read_text().split()
    val = (dataset / "ImageSets/2017/val.txt").read_text().split()
    assert train == names[:2] and val == names[2:]
    for name in names:
        jpgs = sorted(p.name for p in (dataset / "JPEGImages/480p" / name).iterdir())
        pngs = sorted(p.name for p in (dataset / "Annotations/480p" / name).iterdir())
        assert jpgs == [f"{t:05d}.jpg" for t in range(6)]
        assert pngs == [f"{t:05d}.png" for t in range(6)]
        meta = json.loads((dataset / "meta" / f"{name}.json").read_text())
        assert meta["name"] == name and meta["num_frames"] == 6 and meta["size"] == list(SIZE)
        seq = _sequence(dataset, name)
        assert seq.size == SIZE
        assert seq.object_ids == [o["id"] for o in meta["objects"]]
        assert 1 <= len(seq.object_ids) <= 4 and seq.object_ids == list(range(1, len(seq.object_ids) + 1))
        for t in range(len(seq)):
            assert seq.frame(t).shape == (*SIZE, 3)
            labels = seq.label_map(t)
            assert labels.shape == SIZE and labels.dtype == np.uint8
            # meta's per-frame visible pixel counts are the label maps' counts
            for obj in meta["objects"]:
                assert int((labels == obj["id"]).sum()) == obj["visible_pixels"][t]
    summary = json.loads((dataset / "meta/dataset.json").read_text())
    assert summary["train"] == train and summary["val"] == val and summary["num_frames"] == 6
    # the default style is the toy look, recorded so a photo run never writes into this folder
    assert summary["style"] == "toy" and meta["style"] == "toy" and dataset_style(dataset) == "toy"


def test_label_maps_are_indexed_palette_pngs_matching_memory(dataset: Path) -> None:
    path = dataset / "Annotations/480p/synth-001/00003.png"
    with Image.open(path) as image:
        assert image.mode == "P"
        palette = np.array(image.getpalette()[: 3 * 256], np.uint8).reshape(-1, 3)
    assert np.array_equal(palette[:16], DAVIS_PALETTE[:16])
    # the files hold exactly what make_video renders in memory for the same (seed, index)
    seq = Rendered(num_frames=6, size=SIZE, seed=0, index=1)
    for t in range(6):
        on_disk = read_label_map(dataset / f"Annotations/480p/synth-001/{t:05d}.png")
        assert np.array_equal(on_disk, seq.labels[t])
        jpeg = read_frame(dataset / f"JPEGImages/480p/synth-001/{t:05d}.jpg")
        assert np.abs(jpeg.astype(int) - seq.frames[t].astype(int)).mean() < 12  # JPEG loss only


def test_deterministic_from_seed(tmp_path: Path, dataset: Path) -> None:
    again = generate_dataset(
        tmp_path / "again", num_sequences=3, num_frames=6, size=SIZE, seed=0, progress=False
    )
    assert _tree_bytes(again) == _tree_bytes(dataset)
    other = generate_dataset(
        tmp_path / "other", num_sequences=3, num_frames=6, size=SIZE, seed=1, progress=False
    )
    first = "Annotations/480p/synth-000/00000.png"
    assert (other / first).read_bytes() != (dataset / first).read_bytes()
    assert (other / "JPEGImages/480p/synth-000/00000.jpg").read_bytes() != (
        dataset / "JPEGImages/480p/synth-000/00000.jpg"
    ).read_bytes()


def test_rerun_into_existing_folder(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path, num_sequences=2, num_frames=5, size=SIZE, seed=3, progress=False)
    before = _tree_bytes(root)
    generate_dataset(tmp_path, num_sequences=2, num_frames=5, size=SIZE, seed=3, progress=False)
    assert _tree_bytes(root) == before
    generate_dataset(tmp_path, num_sequences=2, num_frames=3, size=SIZE, seed=3, progress=False)
    assert len(list_frames(root / "JPEGImages/480p/synth-001")) == 3  # no stale frames from the longer run
    assert len(list_frames(root / "Annotations/480p/synth-001")) == 3
    assert not list(root.rglob(".*"))  # no temporary files left behind


def test_every_object_visible_in_first_frame() -> None:
    for index in range(6):
        seq = Rendered(num_frames=5, size=SIZE, seed=7, index=index)
        first = seq.labels[0]
        assert seq.object_ids == list(range(1, len(seq.object_ids) + 1))
        for oid in seq.object_ids:
            assert (first == oid).mean() >= 0.015, (index, oid)


def test_shapes_non_convex_and_objects_distinct() -> None:
    seq = Rendered(
        num_frames=3,
        size=(96, 128),
        seed=2,
        index=0,
        min_objects=3,
        max_objects=3,
        distractor_prob=0.0,
        occlusion_fraction=0.0,
    )
    colours, checked = [], 0
    for oid in seq.object_ids:
        mask = (seq.labels[0] == oid).astype(np.uint8)
        colours.append(seq.frames[0][mask.astype(bool)].mean(0))
        if mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
            continue  # clipped by the frame border
        hull = np.zeros_like(mask)
        cv2.fillConvexPoly(hull, cv2.convexHull(cv2.findNonZero(mask)), 1)
        assert mask.sum() / hull.sum() < 0.96  # concavities
        checked += 1
        hsv = cv2.cvtColor(seq.frames[0], cv2.COLOR_RGB2HSV)
        assert np.median(hsv[..., 1][mask.astype(bool)]) > 100  # saturated objects
    assert checked
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(colours[i] - colours[j]).max() > 25
    background = seq.labels[0] == 0
    assert np.median(cv2.cvtColor(seq.frames[0], cv2.COLOR_RGB2HSV)[..., 1][background]) < 80


def test_objects_and_camera_move() -> None:
    seq = Rendered(num_frames=8, size=SIZE, seed=0, index=3, reentry_fraction=0.0)
    assert any(not np.array_equal(seq.labels[0], seq.labels[t]) for t in range(1, 8))
    background = (seq.labels[0] == 0) & (seq.labels[7] == 0)
    diff = np.abs(seq.frames[0].astype(int) - seq.frames[7].astype(int)).mean(-1)
    assert diff[background].mean() > 2  # camera pan / zoom moves the background texture


def test_occlusion_present() -> None:
    seq = Rendered(
        num_frames=12, size=SIZE, seed=0, index=0, min_objects=3, max_objects=3, occlusion_fraction=1.0
    )
    events = seq.meta["occlusion_events"]
    assert events and seq.meta["scripted"]["crossing"] is not None
    found = False
    for obj in seq.meta["objects"]:
        for t, (visible, in_frame) in enumerate(
            zip(obj["visible_pixels"], obj["in_frame_pixels"], strict=True)
        ):
            assert int((seq.labels[t] == obj["id"]).sum()) == visible
            assert visible <= in_frame
            if obj["in_frame"][t] and 0 < obj["visibility"][t] < 1:
                found = True
                assert obj["occluded_by"][t] or obj["occluded_by_distractor"][t]
    assert found


@pytest.mark.parametrize("index", [0, 1, 2])
def test_leave_and_reenter_in_label_maps(index: int) -> None:
    seq = Rendered(num_frames=14, size=SIZE, seed=5, index=index, reentry_fraction=1.0)
    oid = seq.meta["scripted"]["reentry_object"]
    present = [bool((labels == oid).any()) for labels in seq.labels]
    assert present[0]
    first_gap = present.index(False)
    assert any(present[first_gap:]), "object must come back after leaving"
    events = [e for e in seq.meta["reentry_events"] if e["object"] == oid]
    assert events and events[0]["cause"] == "left_frame"
    assert not any(present[events[0]["exit"] : events[0]["reenter"]]) and present[events[0]["reenter"]]
    assert not any(seq.meta["objects"][oid - 1]["in_frame"][events[0]["exit"] : events[0]["reenter"]])


def test_short_videos_have_no_scripted_exit() -> None:
    seq = Rendered(num_frames=5, size=SIZE, seed=0, index=0, reentry_fraction=1.0)
    assert seq.meta["scripted"]["reentry_object"] is None


def test_distractors_are_unlabelled_object_like_pixels() -> None:
    seq = Rendered(num_frames=6, size=SIZE, seed=1, index=0, distractor_prob=1.0, max_distractors=1)
    assert len(seq.meta["distractors"]) == 1 and seq.meta["distractors"][0]["similar_to"] in seq.object_ids
    assert sum(m.sum() for m in seq.distractor_masks) > 0
    saturations = []
    for frame, labels, mask in zip(seq.frames, seq.labels, seq.distractor_masks, strict=True):
        assert not labels[mask].any()  # label 0 under every distractor pixel
        if mask.sum() > 20:
            inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            saturations.append(np.median(cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)[..., 1][inner]))
    assert saturations and max(saturations) > 100  # looks like an object, not like the background


def test_random_access_matches_iteration() -> None:
    video = make_video(num_frames=6, size=SIZE, seed=4, index=2)
    frames = list(video)
    alone = video.render(4)
    assert np.array_equal(alone.image, frames[4].image) and np.array_equal(alone.labels, frames[4].labels)


def test_large_frame_generates() -> None:
    video = make_video(num_frames=2, size=(480, 854), seed=0, index=0)
    frame = video.render(1)
    assert frame.image.shape == (480, 854, 3) and frame.image.dtype == np.uint8
    assert frame.labels.shape == (480, 854)


def test_bad_input_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown synthetic config"):
        generate_dataset(tmp_path, num_sequences=1, num_frames=2, size=SIZE, not_a_knob=1)
    with pytest.raises(DataError, match="size"):
        make_video(2, size="64by80")
    with pytest.raises(DataError, match="num_frames"):
        make_video(0, size=SIZE)
    with pytest.raises(DataError, match="seed"):
        make_video(2, size=SIZE, seed=None)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="num_sequences"):
        generate_dataset(tmp_path, num_sequences=0, size=SIZE)
    with pytest.raises(DataError, match="min_objects"):
        SyntheticConfig(min_objects=3, max_objects=2)


def test_cli_writes_dataset_and_rejects_bad_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = "--sequences 2 --frames 3 --size 64x80 --seed 2 --val-fraction 0.5 --no-progress --set distractor_prob=0.0"
    assert main(["--out", str(out), *args.split()]) == 0
    assert (out / "ImageSets/2017/train.txt").read_text().split() == ["synth-000"]
    assert (out / "ImageSets/2017/val.txt").read_text().split() == ["synth-001"]
    assert _sequence(out, "synth-001").size == SIZE
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "bad"), "--size", "64-by-80"])
    assert exc.value.code == 2
    assert "--size" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_cli_set_parses_values_and_names_unknown_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "set"
    base = ["--sequences", "1", "--frames", "2", "--size", "64x80", "--no-progress"]
    sets = ["object_area=[0.1,0.15]", "patterns=[dots]", "max_objects=2", "distractor_prob=0"]
    assert main(["--out", str(out), *base, *(a for s in sets for a in ("--set", s))]) == 0
    config = json.loads((out / "meta/dataset.json").read_text())["config"]
    assert config["object_area"] == [0.1, 0.15] and config["patterns"] == ["dots"]
    assert config["max_objects"] == 2 and config["distractor_prob"] == 0.0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "bad"), *base, "--set", "not_a_knob=1"])
    assert exc.value.code == 2 and "not_a_knob" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "bad"), *base, "--set", "distractor_prob"])
    assert exc.value.code == 2 and "KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
