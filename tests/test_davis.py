"""ovsnet.data.davis: DAVIS 2017 splits, DAVIS 2016 (both list styles), single-object merge, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ovsnet.data.davis import davis_sequence, load_davis, missing_frames, read_split_file
from ovsnet.data.io import DataError, write_frame, write_label_map
from ovsnet.data.sequence import VideoSequence
from tests.davis_fixtures import (
    H,
    W,
    build_davis2016_frame_lists,
    build_davis2017,
    make_labels,
    write_davis_sequence,
    write_split,
)

SEQS = {"bear": (4, 1), "dogs": (3, 3), "kite": (5, 2), "cars": (3, 2)}


@pytest.fixture()
def davis17(tmp_path: Path) -> Path:
    return build_davis2017(
        tmp_path / "DAVIS",
        SEQS,
        {"train": ["kite", "bear"], "val": ["dogs"], "test-dev": ["cars"]},
        first_only=["cars"],
    )


def test_2017_val_and_train_in_split_order(davis17: Path) -> None:
    train = load_davis(davis17, year=2017, split="train")
    assert [s.name for s in train] == ["kite", "bear"]
    kite = train[0]
    assert isinstance(kite, VideoSequence) and not kite.single_object
    assert len(kite) == 5 and kite.annotated_indices == [0, 1, 2, 3, 4]
    assert kite.frame_paths[0] == davis17 / "JPEGImages/480p/kite/00000.jpg"
    assert kite.annotation_paths[3] == davis17 / "Annotations/480p/kite/00003.png"
    np.testing.assert_array_equal(kite.label_map(3), make_labels(3, 2, void=True))
    assert kite.frame(0).shape == (H, W, 3)
    (val,) = load_davis(davis17, split="val")
    assert val.name == "dogs" and val.object_ids == [1, 2, 3]


def test_2017_test_dev_has_only_first_frame_annotated(davis17: Path) -> None:
    (cars,) = load_davis(davis17, split="test-dev")
    assert len(cars) == 3 and cars.annotated_indices == [0]
    assert cars.label_map(1) is None and cars.object_ids == [1, 2]


def test_2017_full_resolution_folder(tmp_path: Path) -> None:
    root = build_davis2017(tmp_path, {"bear": (3, 1)}, {"val": ["bear"]}, resolution="Full-Resolution")
    (bear,) = load_davis(root, split="val", resolution="Full-Resolution")
    assert "Full-Resolution" in str(bear.frame_paths[0])
    with pytest.raises(DataError, match="480p"):
        load_davis(root, split="val")


def test_2016_from_sequence_lists_merges_objects(davis17: Path) -> None:
    write_split(davis17, "2016", "val", ["dogs", "kite"])
    seqs = load_davis(davis17, year=2016, split="val")
    assert [s.name for s in seqs] == ["dogs", "kite"]
    dogs = seqs[0]
    assert dogs.single_object and dogs.object_ids == [1]
    original = make_labels(1, 3, void=True)
    labels = dogs.label_map(1)
    np.testing.assert_array_equal(labels == 1, (original > 0) & (original != 255))
    np.testing.assert_array_equal(labels == 255, original == 255)


def test_2016_from_frame_lists(tmp_path: Path) -> None:
    root = build_davis2016_frame_lists(
        tmp_path / "DAVIS2016", {"bear": 3, "blackswan": 4}, {"train": ["bear"], "val": ["blackswan", "bear"]}
    )
    seqs = load_davis(root, year=2016, split="val")
    assert [s.name for s in seqs] == ["blackswan", "bear"]
    swan = seqs[0]
    assert swan.single_object and len(swan) == 4 and swan.annotated_indices == [0, 1, 2, 3]
    assert swan.frame_names == ["00000", "00001", "00002", "00003"]
    labels = swan.label_map(2)  # grey 0/255 PNG → object 1
    np.testing.assert_array_equal(labels, (make_labels(2, 1) > 0).astype(np.uint8))
    assert [s.name for s in load_davis(root, year=2016, split="train")] == ["bear"]


def test_2016_frame_list_takes_listed_frames_and_optional_annotations(tmp_path: Path) -> None:
    root = build_davis2016_frame_lists(tmp_path, {"bear": 4}, {})
    lines = [
        "/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png",
        "",
        "/JPEGImages/480p/bear/00002.jpg",
        "/JPEGImages/480p/bear/00003.jpg",
    ]
    (root / "ImageSets/480p").mkdir(parents=True)
    (root / "ImageSets/480p/val.txt").write_text("\n".join(lines))
    (bear,) = load_davis(root, year=2016, split="val")
    assert bear.frame_names == ["00000", "00002", "00003"] and bear.annotated_indices == [0]


def test_2016_prefers_the_sequence_list_when_both_exist(tmp_path: Path) -> None:
    root = build_davis2016_frame_lists(tmp_path, {"bear": 3, "boat": 3}, {"val": ["bear"]})
    write_split(root, "2016", "val", ["boat"])
    assert [s.name for s in load_davis(root, year=2016, split="val")] == ["boat"]


def test_split_file_parsing_skips_blanks_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "val.txt"
    path.write_text("bear\n\n  dogs  \nbear\n")
    assert read_split_file(path) == ["bear", "dogs"]


def test_davis_sequence_single_folder(davis17: Path) -> None:
    kite = davis_sequence(davis17, "kite")
    assert len(kite) == 5 and kite.object_ids == [1, 2]
    merged = davis_sequence(davis17, "kite", single_object=True)
    assert merged.object_ids == [1]
    shutil.rmtree(davis17 / "Annotations/480p/kite")
    with pytest.raises(DataError, match="first frame"):
        davis_sequence(davis17, "kite")
    bare = davis_sequence(davis17, "kite", require_first_annotation=False)
    assert bare.annotated_indices == [] and len(bare) == 5


# ---------------------------------------------------------------- errors


def test_missing_root_and_split_file_explain_the_layout(tmp_path: Path, davis17: Path) -> None:
    with pytest.raises(DataError, match=r"nope.*does not exist.*JPEGImages"):
        load_davis(tmp_path / "nope")
    with pytest.raises(DataError, match=r"ImageSets/2017/test-challenge\.txt.*layout"):
        load_davis(davis17, split="test-challenge")
    with pytest.raises(DataError, match=r"ImageSets/2016/val\.txt.*ImageSets/480p/val\.txt"):
        load_davis(davis17, year=2016, split="val")
    with pytest.raises(DataError, match="2018"):
        load_davis(davis17, year=2018)


def test_listed_sequence_without_folder(davis17: Path) -> None:
    write_split(davis17, "2017", "val", ["dogs", "ghost"])
    with pytest.raises(DataError, match=r"'ghost'.*JPEGImages/480p/ghost"):
        load_davis(davis17, split="val")


def test_empty_sequence_folder(davis17: Path) -> None:
    (davis17 / "JPEGImages/480p/empty").mkdir()
    write_split(davis17, "2017", "val", ["empty"])
    with pytest.raises(DataError, match=r"'empty'.*no images"):
        load_davis(davis17, split="val")


@pytest.mark.parametrize("split", ["val", "test-dev"])
def test_first_frame_without_annotation(davis17: Path, split: str) -> None:
    name = "dogs" if split == "val" else "cars"
    (davis17 / f"Annotations/480p/{name}/00000.png").unlink()
    with pytest.raises(DataError, match=rf"'{name}'.*first frame.*Annotations/480p/{name}/00000\.png"):
        load_davis(davis17, split=split)


def test_later_frames_may_be_unannotated(davis17: Path) -> None:
    (davis17 / "Annotations/480p/dogs/00001.png").unlink()
    (dogs,) = load_davis(davis17, split="val")
    assert dogs.annotated_indices == [0, 2] and dogs.label_map(1) is None


def test_annotation_without_frame(davis17: Path) -> None:
    write_label_map(davis17 / "Annotations/480p/dogs/00007.png", np.zeros((H, W), np.uint8))
    with pytest.raises(DataError, match=r"00007\.png.*no matching frame"):
        load_davis(davis17, split="val")


def test_size_mismatch_is_lazy_and_names_the_file(davis17: Path) -> None:
    write_label_map(davis17 / "Annotations/480p/dogs/00002.png", np.zeros((H + 2, W), np.uint8))
    (dogs,) = load_davis(davis17, split="val")  # loading stays cheap: no annotation is decoded
    dogs.label_map(1)
    with pytest.raises(DataError, match=r"Annotations/480p/dogs/00002\.png.*size"):
        dogs.label_map(2)


def test_frame_list_errors_name_line_and_file(tmp_path: Path) -> None:
    root = build_davis2016_frame_lists(tmp_path, {"bear": 2}, {"val": ["bear"]})
    listing = root / "ImageSets/480p/val.txt"
    extra = "/JPEGImages/480p/bear/00009.jpg /Annotations/480p/bear/00009.png\n"
    listing.write_text(listing.read_text() + extra)
    with pytest.raises(DataError, match=r"line 3.*00009\.jpg"):
        load_davis(root, year=2016, split="val")
    write_frame(root / "JPEGImages/480p/bear/00009.jpg", np.zeros((H, W, 3), np.uint8))
    with pytest.raises(DataError, match=r"line 3.*annotation.*00009\.png"):
        load_davis(root, year=2016, split="val")
    listing.write_text(
        "/JPEGImages/480p/bear/00000.jpg\n/JPEGImages/480p/bear/00001.jpg /Annotations/480p/bear/00001.png\n"
    )
    with pytest.raises(DataError, match=r"'bear'.*first frame"):
        load_davis(root, year=2016, split="val")
    listing.write_text("a b c\n")
    with pytest.raises(DataError, match="line 1"):
        load_davis(root, year=2016, split="val")


def test_duplicate_frame_stems_are_rejected(tmp_path: Path) -> None:
    write_davis_sequence(tmp_path, "bear", 2, 1)
    write_frame(tmp_path / "JPEGImages/480p/bear/00001.png", np.zeros((H, W, 3), np.uint8))
    with pytest.raises(DataError, match="00001"):
        davis_sequence(tmp_path, "bear")


def test_gap_in_frame_numbering_warns_with_sequence_and_frame_names(
    davis17: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="ovsnet.data.davis"):
        load_davis(davis17, split="train")
    assert not caplog.records  # contiguous numbering: nothing to say
    for folder, suffix in (("JPEGImages", "jpg"), ("Annotations", "png")):  # gone from both folders
        (davis17 / f"{folder}/480p/kite/00002.{suffix}").unlink()
    with caplog.at_level("WARNING", logger="ovsnet.data.davis"):
        kite, _ = load_davis(davis17, split="train")
    assert kite.frame_names == ["00000", "00001", "00003", "00004"]  # read past the gap, not stopped by it
    (record,) = caplog.records
    assert "'kite'" in record.getMessage() and "00002" in record.getMessage()
    assert "'bear'" not in record.getMessage()


def test_missing_frames_only_for_numbered_frames() -> None:
    names = lambda *stems: [Path(f"{s}.jpg") for s in stems]  # noqa: E731
    assert missing_frames(names("00000", "00001", "00004")) == ["00002", "00003"]
    assert missing_frames(names("00005", "00006")) == []  # a clip may start anywhere
    assert missing_frames(names("a", "c")) == [] and missing_frames([]) == []


def test_davis2016_annotation_with_several_ids_warns_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ids {1, 128} in a DAVIS 2016 annotation are merged into one object: said once, naming the file."""
    root = build_davis2016_frame_lists(tmp_path / "DAVIS16", {"swan": 3}, {"val": ["swan"]})
    labels = np.zeros((H, W), np.uint8)
    labels[:10], labels[-10:] = 1, 128
    write_label_map(root / "Annotations/480p/swan/00001.png", labels)
    (swan,) = load_davis(root, year=2016, split="val")
    with caplog.at_level("WARNING", logger="ovsnet.data.sequence"):
        assert swan.label_map(0) is not None
        assert not caplog.records  # a 0/255 annotation is one object: nothing to say
        merged = swan.label_map(1)
        swan.label_map(1)
    assert set(np.unique(merged).tolist()) == {0, 1}
    (record,) = caplog.records
    message = record.getMessage()
    assert "'swan'" in message and "00001.png" in message and "[1, 128]" in message
