"""The photo-realistic synthetic videos (``style="photo"``): DAVIS layout read back by the real loaders, the
train/val photo split, determinism, the articulated / holed / thin shapes, and that toy and photo videos
never share a folder."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import ovsnet.data.photo_videos.photos as photos_module
from ovsnet.data.davis import load_davis
from ovsnet.data.io import DAVIS_PALETTE, DataError
from ovsnet.data.photo_videos import PHOTO_SPLITS, PHOTOS, PhotoConfig, load_photo
from ovsnet.data.synthetic import (
    SyntheticConfig,
    build_meta,
    dataset_style,
    generate_dataset,
    main,
    make_video,
)

SIZE = (96, 128)
NAMES = [f"photo-{i:03d}" for i in range(4)]


class Rendered:
    """A video rendered the way ``generate_dataset`` renders it: its frames, label maps and meta record."""

    def __init__(self, **kwargs: object) -> None:
        video = make_video(**kwargs)
        frames = list(video)
        self.meta = build_meta(video, frames)
        self.frames = [f.image for f in frames]
        self.labels = [f.labels for f in frames]


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _meta(root: Path, name: str) -> dict:
    return json.loads((root / "meta" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photo")
    # a plain list for size and a style key, as Hydra's generate_synthetic config passes them
    return generate_dataset(
        root,
        num_sequences=4,
        num_frames=8,
        size=list(SIZE),
        seed=0,
        val_fraction=0.5,
        style="photo",
        progress=False,
    )


def test_davis_layout_loads_with_load_davis(dataset: Path) -> None:
    assert (dataset / "ImageSets/2017/train.txt").read_text().split() == NAMES[:2]
    assert (dataset / "ImageSets/2017/val.txt").read_text().split() == NAMES[2:]
    summary = json.loads((dataset / "meta/dataset.json").read_text())
    assert summary["style"] == "photo" and summary["photo_splits"] == {
        k: list(v) for k, v in PHOTO_SPLITS.items()
    }
    assert dataset_style(dataset) == "photo"
    for split, names in (("train", NAMES[:2]), ("val", NAMES[2:])):
        sequences = load_davis(dataset, split=split)
        assert [s.name for s in sequences] == names
        for seq in sequences:
            meta = _meta(dataset, seq.name)
            assert meta["style"] == "photo" and meta["photos"]["split"] == split
            assert len(seq) == 8 and seq.size == SIZE
            assert seq.object_ids == [o["id"] for o in meta["objects"]]
            frame = seq.frame(0)
            assert frame.shape == (*SIZE, 3) and frame.dtype == np.uint8
            assert frame.std() > 10  # a photograph, not a flat fill
    with Image.open(dataset / "Annotations/480p/photo-001/00003.png") as image:
        assert image.mode == "P"
        palette = np.array(image.getpalette()[: 3 * 256], np.uint8).reshape(-1, 3)
    assert np.array_equal(palette[:16], DAVIS_PALETTE[:16])


def test_first_frame_masks_and_consistent_ids(dataset: Path) -> None:
    for name in NAMES:
        meta = _meta(dataset, name)
        seq = next(s for s in load_davis(dataset, split=meta["photos"]["split"]) if s.name == name)
        ids = seq.object_ids
        assert 1 <= len(ids) <= 4 and ids == list(range(1, len(ids) + 1))
        first = seq.label_map(0)
        for oid in ids:
            assert (first == oid).mean() >= 0.015, (name, oid)  # every target clearly visible in frame 0
        for t in range(len(seq)):
            labels = seq.label_map(t)
            assert set(np.unique(labels).tolist()) <= {0, *ids}  # no distractor or stray id in the annotation
            for obj in meta["objects"]:
                assert int((labels == obj["id"]).sum()) == obj["visible_pixels"][t]


def test_train_and_val_photos_are_disjoint(dataset: Path) -> None:
    assert not set(PHOTO_SPLITS["train"]) & set(PHOTO_SPLITS["val"])
    assert set(PHOTO_SPLITS["train"]) | set(PHOTO_SPLITS["val"]) == set(PHOTOS)
    used: dict[str, set[str]] = {"train": set(), "val": set()}
    for name in NAMES:
        photos = _meta(dataset, name)["photos"]
        names = {photos["background"], *photos["objects"].values(), *photos["distractors"]}
        assert names == set(photos["all"]) and names <= set(PHOTO_SPLITS[photos["split"]])
        assert photos["background"] not in photos["objects"].values()  # objects stand out from the background
        used[photos["split"]] |= names
    assert used["train"] and used["val"] and not used["train"] & used["val"]
    # a lone video (train and val at once) and a direct call pick their photo set from the split
    seq = Rendered(num_frames=2, size=SIZE, seed=3, index=0, style="photo", split="val")
    assert set(seq.meta["photos"]["all"]) <= set(PHOTO_SPLITS["val"])


def test_deterministic_from_seed(tmp_path: Path) -> None:
    kwargs = dict(
        num_sequences=2, num_frames=4, size=(64, 80), val_fraction=0.5, style="photo", progress=False
    )
    first = generate_dataset(tmp_path / "a", seed=5, **kwargs)
    again = generate_dataset(tmp_path / "b", seed=5, **kwargs)
    assert _tree_bytes(first) == _tree_bytes(again)
    other = generate_dataset(tmp_path / "c", seed=6, **kwargs)
    jpeg = "JPEGImages/480p/photo-000/00000.jpg"
    assert (other / jpeg).read_bytes() != (first / jpeg).read_bytes()
    # random access renders exactly what iteration renders
    video = make_video(num_frames=5, size=(64, 80), seed=5, index=1, style="photo")
    frames = list(video)
    alone = video.render(3)
    assert np.array_equal(alone.image, frames[3].image) and np.array_equal(alone.labels, frames[3].labels)


def _solidity(mask: np.ndarray) -> float:
    hull = np.zeros_like(mask)
    cv2.fillConvexPoly(hull, cv2.convexHull(cv2.findNonZero(mask)), 1)
    return float(mask.sum() / hull.sum())


def _has_hole(mask: np.ndarray) -> bool:
    _, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return hierarchy is not None and bool((hierarchy[0][:, 3] >= 0).any())  # a contour inside another


@pytest.mark.parametrize("kind", ["limbs", "branch", "holes", "crescent"])
def test_articulated_thin_and_holed_shapes(kind: str) -> None:
    seq = Rendered(
        num_frames=10,
        size=(120, 160),
        seed=1,
        index=0,
        style="photo",
        min_objects=1,
        max_objects=1,
        distractor_prob=0.0,
        reentry_fraction=0.0,
        photo={"kind_weights": {kind: 1.0}},
    )
    (obj,) = seq.meta["objects"]
    assert obj["kind"] == kind
    masks = [(labels == 1).astype(np.uint8) for labels in seq.labels]
    mask = masks[0]
    if kind == "holes":
        assert obj["holes"] >= 1 and _has_hole(mask)
    elif kind == "limbs":
        assert 2 <= obj["limbs"] <= 4 and obj["body"] in ("biped", "quadruped")
        assert _solidity(mask) < 0.8
    elif kind == "branch":
        assert _solidity(mask) < 0.7
    else:
        assert _solidity(mask) < 0.8  # concave
    # the shape deforms: its outline changes beyond what translation explains
    shapes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        if len(ys):
            crop = m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
            shapes.append(cv2.resize(crop, (32, 32), interpolation=cv2.INTER_NEAREST))
    assert max(int((shapes[0] != s).sum()) for s in shapes[1:]) > 20
    if kind in ("limbs", "branch"):
        # thin parts: an opening as wide as a fifth of the object's size removes a good share of its pixels
        size = int(round(0.2 * np.sqrt(mask.sum())))
        opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((size, size), np.uint8))
        assert opened.sum() < 0.95 * mask.sum()  # (a blob or a star loses ~1%)


def test_camera_lighting_and_motion() -> None:
    seq = Rendered(num_frames=10, size=SIZE, seed=0, index=2, style="photo", reentry_fraction=0.0)
    background = (seq.labels[0] == 0) & (seq.labels[9] == 0)
    diff = np.abs(seq.frames[0].astype(int) - seq.frames[9].astype(int)).mean(-1)
    assert diff[background].mean() > 4  # camera pan / zoom over the photo
    assert any(not np.array_equal(seq.labels[0], seq.labels[t]) for t in range(1, 10))


def test_occlusion_and_leave_reenter() -> None:
    seq = Rendered(
        num_frames=14, size=SIZE, seed=5, index=0, style="photo", reentry_fraction=1.0, distractor_prob=0.0
    )
    oid = seq.meta["scripted"]["reentry_object"]
    present = [bool((labels == oid).any()) for labels in seq.labels]
    assert present[0] and not all(present)
    events = [e for e in seq.meta["reentry_events"] if e["object"] == oid]
    assert events and events[0]["cause"] == "left_frame" and present[events[0]["reenter"]]
    crossed = Rendered(
        num_frames=12,
        size=SIZE,
        seed=0,
        index=0,
        style="photo",
        min_objects=3,
        max_objects=3,
        occlusion_fraction=1.0,
    )
    assert crossed.meta["scripted"]["crossing"] is not None and crossed.meta["occlusion_events"]


def test_styles_never_share_a_folder(tmp_path: Path) -> None:
    generate_dataset(tmp_path, num_sequences=1, num_frames=2, size=(64, 80), progress=False)
    assert dataset_style(tmp_path) == "toy"
    with pytest.raises(DataError, match="already holds 'toy'"):
        generate_dataset(
            tmp_path, num_sequences=1, num_frames=2, size=(64, 80), style="photo", progress=False
        )
    assert dataset_style(tmp_path / "nothing") is None


def test_bad_photo_config_raises_data_error() -> None:
    with pytest.raises(DataError, match="style"):
        SyntheticConfig(style="painting")
    with pytest.raises(DataError, match="unknown photo config"):
        SyntheticConfig(style="photo", photo={"not_a_knob": 1})
    with pytest.raises(DataError, match="kind_weights"):
        PhotoConfig(kind_weights={"dragon": 1.0})
    with pytest.raises(DataError, match="split"):
        make_video(2, size=SIZE, style="photo", split="test")


def test_bundled_photos_load_offline_and_licences_documented() -> None:
    doc = photos_module.__doc__ or ""
    for split, names in PHOTO_SPLITS.items():
        for name in names:
            image = load_photo(name)
            assert image.dtype == np.uint8 and image.ndim == 3 and min(image.shape[:2]) >= 250
            row = next(line for line in doc.splitlines() if line.startswith(name + " "))
            assert row.split()[-1] == split and PHOTOS[name].licence.split(" (")[0].split()[0] in row
    # read straight from the wheel's files, yet the same pixels as the documented skimage.data functions
    import skimage.data

    assert np.array_equal(load_photo("chelsea"), skimage.data.chelsea())
    assert np.array_equal(load_photo("brick")[..., 0], skimage.data.brick())


def test_cli_and_hydra_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = ["--out", str(out), "--style", "photo", "--sequences", "2", "--frames", "2", "--size", "64x80"]
    # a nested PhotoConfig key through --set replaces the default shape mix
    nested = ["--set", "photo.kind_weights.star=1.0"]
    assert main([*args, "--val-fraction", "0.5", "--no-progress", *nested]) == 0
    assert "photo" in capsys.readouterr().out and dataset_style(out) == "photo"
    assert (out / "ImageSets/2017/val.txt").read_text().split() == ["photo-001"]
    assert {o["kind"] for o in _meta(out, "photo-000")["objects"]} == {"star"}

    from hydra import compose, initialize_config_dir

    import ovsnet.schemas  # noqa: F401 - registers the schemas the config groups name

    overrides = [
        "data=synthetic_photo",
        "data.generate_synthetic.photo={kind_weights:{limbs:1.0},limbs:[2,3]}",
    ]
    with initialize_config_dir(
        config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"
    ):
        photo = compose("train.yaml", overrides=overrides)
        toy = compose("train.yaml", overrides=["data=synthetic"])
    assert toy.data.generate_synthetic.style == "toy" and photo.data.generate_synthetic.style == "photo"
    assert photo.data.root != toy.data.root  # the datamodule regenerates only missing folders
    # exactly what the datamodule passes: the DictConfig's items, nested containers included
    generate = dict(photo.data.generate_synthetic)
    generate.update(num_sequences=1, num_frames=2, size=[64, 80])
    root = generate_dataset(tmp_path / "hydra", progress=False, **generate)
    meta = _meta(root, "photo-000")
    assert dataset_style(root) == "photo" and meta["photo_config"]["limbs"] == [2, 3]
    assert {o["kind"] for o in meta["objects"]} == {"limbs"}
