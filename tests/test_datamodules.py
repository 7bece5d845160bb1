"""DAVIS-layout training data: samples, targets, the video batch sampler, errors and the DataModule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ovsnet.data.io import DataError, write_frame, write_label_map
from ovsnet.data.transforms import SampleTransform, build_targets
from ovsnet.data.video_batches import FrameRef, VideoBatchSampler, VideoFrameDataset, collate_detection

pytest.importorskip("ovsnet.data.davis")
from ovsnet.lightning.datamodules import DAVISDataModule  # noqa: E402

H, W = 48, 64


def _labels(frame: int, video: int, n_objects: int) -> np.ndarray:
    labels = np.zeros((H, W), np.uint8)
    for obj in range(1, n_objects + 1):
        y, x = 4 + 12 * (obj - 1), 4 + 2 * frame + video
        labels[y : y + 10, x : x + 14] = obj
    return labels


def make_davis(
    root: Path,
    videos: dict[str, str] | None = None,
    frames: int = 4,
    n_objects: int = 2,
    empty_frame: int | None = None,
) -> Path:
    """Write a tiny DAVIS 2017 layout; ``empty_frame`` has an all-background annotation."""
    videos = videos or {"a": "train", "b": "train", "c": "train", "d": "val"}
    splits: dict[str, list[str]] = {}
    rng = np.random.default_rng(0)
    for v, (name, split) in enumerate(videos.items()):
        splits.setdefault(split, []).append(name)
        for f in range(frames):
            write_frame(
                root / "JPEGImages/480p" / name / f"{f:05d}.jpg",
                rng.integers(0, 255, (H, W, 3), dtype=np.uint8),
            )
            labels = np.zeros((H, W), np.uint8) if f == empty_frame else _labels(f, v, n_objects)
            write_label_map(root / "Annotations/480p" / name / f"{f:05d}.png", labels)
    (root / "ImageSets/2017").mkdir(parents=True, exist_ok=True)
    for split, names in splits.items():
        (root / "ImageSets/2017" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def _dm(root: Path, **kw) -> DAVISDataModule:
    args = dict(
        root=str(root),
        frames_per_video=2,
        videos_per_batch=2,
        augment=False,
        num_workers=0,
        persistent_workers=False,
        min_area=4,
        val_frame_stride=1,
    )
    args.update(kw)
    return DAVISDataModule(**args)


def test_sample_format_and_reid_ids(tmp_path: Path) -> None:
    dm = _dm(make_davis(tmp_path / "davis"))
    dm.setup("fit")
    ds = dm.data_train
    assert len(ds) == 3 * 4
    image, target = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, H, W)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert target["masks"].dtype == torch.uint8 and target["masks"].shape == (2, H, W)
    assert target["labels"].tolist() == [1, 1]
    assert target["boxes"][0].tolist() == [4.0, 4.0, 18.0, 14.0]
    ids = {int(i) for k in range(len(ds)) for i in ds[k][1]["reid_ids"]}
    assert len(ids) == 3 * 2  # unique per (video, object), shared across the frames of a video


def test_empty_frame_and_degenerate_masks(tmp_path: Path) -> None:
    dm = _dm(make_davis(tmp_path / "davis", empty_frame=1))
    dm.setup("fit")
    _, target = dm.data_train[1]
    assert target["boxes"].shape == (0, 4) and target["masks"].shape == (0, H, W)
    tiny = np.zeros((2, H, W), np.uint8)
    tiny[0, 5, 5] = 1  # one pixel: below min_area
    tiny[1, 10:20, 10:20] = 1
    kept = build_targets(tiny, [1, 1], [7, 8], min_area=4)
    assert kept["reid_ids"].tolist() == [8]


def test_batch_sampler_groups_videos() -> None:
    video_of_item = [v for v in range(4) for _ in range(5)]
    sampler = VideoBatchSampler(video_of_item, videos_per_batch=2, frames_per_video=3, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4
    for batch in batches:
        assert len(batch) == 6
        videos = [video_of_item[i] for i in batch]
        assert len(set(videos)) == 2 and all(videos.count(v) == 3 for v in set(videos))
    sampler.set_epoch(1)
    assert list(sampler) != batches
    ranks = [list(VideoBatchSampler(video_of_item, 2, 3, seed=1, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 2 and ranks[0] != ranks[1]


def test_train_loader_batches(tmp_path: Path) -> None:
    dm = _dm(make_davis(tmp_path / "davis"))
    dm.setup("fit")
    images, targets, skipped = next(iter(dm.train_dataloader()))
    assert len(images) == len(targets) == dm.batch_size == 4 and skipped == 0
    assert len({int(t["reid_ids"][0]) // 256 for t in targets}) == 2
    val_images, _, _ = next(iter(dm.val_dataloader()))
    assert len(val_images) == 2


def test_corrupt_image_skipped_and_counted(tmp_path: Path) -> None:
    root = make_davis(tmp_path / "davis")
    (root / "JPEGImages/480p/a/00002.jpg").write_bytes(b"not a jpeg")
    dm = _dm(root)
    dm.setup("fit")
    assert dm.data_train[2] is None and dm.data_train.skipped == 1
    images, _, skipped = collate_detection([dm.data_train[0], dm.data_train[2]])
    assert len(images) == 1 and skipped == 1
    strict = _dm(root, on_error="raise")
    strict.setup("fit")
    with pytest.raises(DataError, match="00002.jpg"):
        strict.data_train[2]


def test_missing_dataset_message(tmp_path: Path) -> None:
    dm = _dm(tmp_path / "nowhere")
    dm.prepare_data()  # no synthetic config: nothing generated
    with pytest.raises(DataError, match=r"nowhere.*JPEGImages/<resolution>"):
        dm.setup("fit")


def test_augment_keeps_boxes_on_masks(tmp_path: Path) -> None:
    dm = _dm(make_davis(tmp_path / "davis"), augment=True, image_size=32)
    dm.setup("fit")
    for k in range(4):
        image, target = dm.data_train[k]
        assert image.shape[1:] == (24, 32)
        for box, mask in zip(target["boxes"], target["masks"], strict=True):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_per_dataset_finetune_adds_first_frames_and_lucid(tmp_path: Path) -> None:
    pytest.importorskip("ovsnet.data.lucid")
    dm = _dm(make_davis(tmp_path / "davis"), per_dataset_finetune=True, lucid_samples_per_frame=2)
    dm.setup("fit")
    refs = dm.data_train.refs
    assert refs[-3:] == [FrameRef(3, 0), FrameRef(3, 0, 0), FrameRef(3, 0, 1)]
    image, target = dm.data_train[len(refs) - 1]
    assert image.shape == (3, H, W) and target["masks"].shape[1:] == (H, W)


def test_sample_transform_without_objects() -> None:
    image = np.zeros((40, 80, 3), np.uint8)
    out, masks = SampleTransform(image_size=40)(image, np.zeros((0, 40, 80), np.uint8))
    assert out.shape == (20, 40, 3) and masks.shape == (0, 20, 40)


def test_dataset_rejects_unknown_error_policy(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_error"):
        VideoFrameDataset([], [], on_error="ignore")


def test_synthetic_style_mismatch_is_refused(tmp_path: Path) -> None:
    """Toy videos in data.root and a photo config: refused naming the folder, never silently mixed."""
    from ovsnet.data.synthetic import generate_dataset

    root = generate_dataset(tmp_path / "videos", num_sequences=2, num_frames=3, size=(32, 40), progress=False)
    gen = {"num_sequences": 2, "num_frames": 3, "size": [32, 40], "style": "photo"}
    with pytest.raises(DataError, match="style 'toy'.*photo"):
        DAVISDataModule(root=str(root), generate_synthetic=gen, num_workers=0).prepare_data()
    DAVISDataModule(root=str(root), generate_synthetic={**gen, "style": "toy"}, num_workers=0).prepare_data()


def test_holdout_videos_are_validation_and_never_trained_on(tmp_path: Path) -> None:
    root = make_davis(tmp_path / "davis", {"a": "train", "b": "train", "c": "train", "d": "val"})
    dm = _dm(root, holdout=["c"], val_split="no-such-split")  # val_split is not read when holdout is set
    dm.setup("fit")
    assert [s.name for s in dm.train_sequences()] == ["a", "b"]
    assert [s.name for s in dm.val_sequences()] == ["c"]
    trained = {dm.data_train.sequences[r.video].name for r in dm.data_train.refs}
    assert trained == {"a", "b"}
    with pytest.raises(DataError, match="'zz'"):
        _dm(root, holdout=["zz"]).train_sequences()


def _opened_annotations(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every annotation PNG the data code reads (through ``VideoSequence._read_label_map``)."""
    from ovsnet.data.sequence import VideoSequence

    opened: list[Path] = []
    original = VideoSequence._read_label_map

    def spy(self: VideoSequence, index: int) -> np.ndarray:
        opened.append(self.annotation_paths[index])
        return original(self, index)

    monkeypatch.setattr(VideoSequence, "_read_label_map", spy)
    return opened


@pytest.mark.parametrize(("layout", "resolution"), [("2016", "240p"), ("2017", "480p")])
def test_adapt_root_reads_only_first_annotations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, resolution: str
) -> None:
    """Per-dataset fine-tuning on videos to be segmented reads frame 0's annotation of each and nothing else:
    their later annotations are garbage here (and a test-dev-like folder, without them, works too)."""
    pytest.importorskip("ovsnet.data.lucid")
    from tests.davis_fixtures import write_davis_sequence, write_split

    train = make_davis(tmp_path / "davis", {"a": "train", "b": "train"})
    target = tmp_path / "target"
    write_davis_sequence(target, "seen", 5, 1, resolution)
    write_davis_sequence(target, "test-dev-like", 5, 1, resolution, annotated=[0])
    for later in sorted((target / "Annotations" / resolution / "seen").glob("*.png"))[1:]:
        later.write_bytes(b"not a png: training must never open me")
    write_split(target, layout, "val", ["seen", "test-dev-like"])
    opened = _opened_annotations(monkeypatch)
    dm = _dm(
        train, per_dataset_finetune=True, lucid_samples_per_frame=2, adapt_root=str(target), val_split=None
    )
    dm.setup("fit")
    assert [s.name for s in dm.adapt_sequences()] == ["seen", "test-dev-like"]
    for i in range(len(dm.data_train)):
        dm.data_train[i]
    from_target = [p for p in opened if target in p.parents]
    assert from_target and {p.name for p in from_target} == {"00000.png"}
    adapted = [
        r for r in dm.data_train.refs if dm.data_train.sequences[r.video].name in ("seen", "test-dev-like")
    ]
    assert len(adapted) == 2 * (1 + 2)  # first frame + 2 Lucid samples, per video


def test_detect_davis_layout(tmp_path: Path) -> None:
    from ovsnet.data.davis import detect_davis_layout
    from tests.davis_fixtures import build_davis2016_frame_lists, write_davis_sequence, write_split

    assert detect_davis_layout(build_davis2016_frame_lists(tmp_path / "a", {"x": 2}, {"val": ["x"]})) == (
        2016,
        "480p",
    )
    write_davis_sequence(tmp_path / "b", "x", 2, 2, "240p")
    write_split(tmp_path / "b", "2017", "val", ["x"])
    assert detect_davis_layout(tmp_path / "b", "val") == (2017, "240p")
    with pytest.raises(DataError, match="split 'test'"):
        detect_davis_layout(tmp_path / "b", "test")
    with pytest.raises(DataError, match="no resolution folder"):
        detect_davis_layout(tmp_path / "empty")
