"""ovsnet.data.io: indexed-PNG label maps, palette, RGB/grey annotations, frames, atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovsnet.data import io
from ovsnet.data.io import (
    DAVIS_PALETTE,
    DataError,
    atomic_path,
    list_frames,
    read_frame,
    read_label_map,
    write_frame,
    write_label_map,
)

H, W = 64, 80


def _all_ids() -> np.ndarray:
    """Every value 0..255 (255 = void) in a 64×80 map, plus some structure."""
    labels = (np.arange(H * W) % 256).astype(np.uint8).reshape(H, W)
    labels[:4] = 255
    return labels


def test_palette_is_the_davis_voc_palette() -> None:
    assert DAVIS_PALETTE.shape == (256, 3) and DAVIS_PALETTE.dtype == np.uint8
    expected = {
        0: (0, 0, 0),
        1: (128, 0, 0),
        2: (0, 128, 0),
        3: (128, 128, 0),
        4: (0, 0, 128),
        5: (128, 0, 128),
        6: (0, 128, 128),
        7: (128, 128, 128),
        8: (64, 0, 0),
        255: (224, 224, 192),
    }
    for index, colour in expected.items():
        assert tuple(DAVIS_PALETTE[index]) == colour
    assert len({tuple(c) for c in DAVIS_PALETTE}) == 256  # unique colours → RGB annotations invert


def test_label_map_round_trip_is_lossless_with_void_and_many_ids(tmp_path: Path) -> None:
    labels = _all_ids()
    path = tmp_path / "seq" / "00000.png"
    write_label_map(path, labels)
    image = Image.open(path)
    assert image.mode == "P"
    palette = np.asarray(image.getpalette()[: 256 * 3], dtype=np.uint8).reshape(256, 3)
    np.testing.assert_array_equal(palette, DAVIS_PALETTE)
    back = read_label_map(path)
    assert back.dtype == np.uint8 and back.shape == (H, W)
    np.testing.assert_array_equal(back, labels)


def test_label_map_accepts_wider_int_dtypes_and_rejects_bad_values(tmp_path: Path) -> None:
    labels = np.zeros((H, W), dtype=np.int64)
    labels[10:20, 10:20] = 3
    write_label_map(tmp_path / "a.png", labels)
    np.testing.assert_array_equal(read_label_map(tmp_path / "a.png"), labels.astype(np.uint8))
    with pytest.raises(DataError, match="b.png"):
        write_label_map(tmp_path / "b.png", np.full((H, W), 300, dtype=np.int32))
    with pytest.raises(DataError, match="c.png"):
        write_label_map(tmp_path / "c.png", np.zeros((H, W, 3), dtype=np.uint8))
    assert not (tmp_path / "b.png").exists() and not (tmp_path / "c.png").exists()


def test_rgb_palette_annotation_converts_to_ids(tmp_path: Path) -> None:
    labels = np.zeros((H, W), dtype=np.uint8)
    labels[5:20, 5:30] = 1
    labels[30:50, 40:70] = 2
    labels[0, :] = 255
    rgb = DAVIS_PALETTE[labels]
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_label_map(tmp_path / "rgb.png"), labels)
    rgba = np.concatenate([rgb, np.full((H, W, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_label_map(tmp_path / "rgba.png"), labels)


def test_unknown_rgb_colour_raises_naming_the_file(tmp_path: Path) -> None:
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[3, 3] = (1, 2, 3)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "odd_colour.png")
    with pytest.raises(DataError, match=r"odd_colour\.png.*\(1, 2, 3\)"):
        read_label_map(tmp_path / "odd_colour.png")


def test_grayscale_0_255_and_0_1_become_binary(tmp_path: Path) -> None:
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[10:30, 20:60] = 255
    Image.fromarray(mask, mode="L").save(tmp_path / "m255.png")
    got = read_label_map(tmp_path / "m255.png")
    assert set(np.unique(got)) == {0, 1}
    np.testing.assert_array_equal(got, (mask > 0).astype(np.uint8))
    Image.fromarray((mask > 0).astype(np.uint8), mode="L").save(tmp_path / "m01.png")
    np.testing.assert_array_equal(read_label_map(tmp_path / "m01.png"), (mask > 0).astype(np.uint8))
    Image.fromarray(mask > 0).save(tmp_path / "m1bit.png")  # mode "1"
    np.testing.assert_array_equal(read_label_map(tmp_path / "m1bit.png"), (mask > 0).astype(np.uint8))


def test_grayscale_with_several_values_keeps_them_unless_binary(tmp_path: Path) -> None:
    labels = np.zeros((H, W), dtype=np.uint8)
    labels[:10] = 1
    labels[10:20] = 2
    labels[20:30] = 7
    Image.fromarray(labels, mode="L").save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_label_map(tmp_path / "grey.png"), labels)
    binary = read_label_map(tmp_path / "grey.png", binary=True)
    np.testing.assert_array_equal(binary, (labels > 0).astype(np.uint8))


def test_binary_on_indexed_png_drops_void(tmp_path: Path) -> None:
    labels = np.zeros((H, W), dtype=np.uint8)
    labels[:5] = 255
    labels[10:20] = 2
    write_label_map(tmp_path / "p.png", labels)
    got = read_label_map(tmp_path / "p.png", binary=True)
    np.testing.assert_array_equal(got, (labels == 2).astype(np.uint8))


def test_corrupt_and_missing_files_raise_naming_them(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(DataError, match="broken.png"):
        read_label_map(bad)
    with pytest.raises(DataError, match="broken.png"):
        read_frame(bad)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(DataError, match="notes.jpg"):
        read_frame(text)
    with pytest.raises(DataError, match="absent.png"):
        read_label_map(tmp_path / "absent.png")
    assert issubclass(DataError, ValueError)


def test_frame_round_trip_png_exact_jpeg_close_and_grey_promoted(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    write_frame(tmp_path / "f.png", frame)
    np.testing.assert_array_equal(read_frame(tmp_path / "f.png"), frame)
    smooth = np.zeros((H, W, 3), dtype=np.uint8)
    smooth[..., 0], smooth[..., 1], smooth[..., 2] = 200, 50, 120
    write_frame(tmp_path / "f.jpg", smooth)
    back = read_frame(tmp_path / "f.jpg")
    assert back.shape == (H, W, 3) and back.dtype == np.uint8
    assert np.abs(back.astype(int) - smooth).max() <= 4
    Image.fromarray(smooth[..., 0], mode="L").save(tmp_path / "g.png")
    grey = read_frame(tmp_path / "g.png")
    assert grey.shape == (H, W, 3) and (grey == 200).all()
    with pytest.raises(DataError, match="bad.png"):
        write_frame(tmp_path / "bad.png", frame.astype(np.float32))


def test_list_frames_sorted_and_filtered(tmp_path: Path) -> None:
    for name in ("00002.jpg", "00000.jpg", "00001.PNG", "notes.txt", "x.bmp"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.jpg").mkdir()
    assert [p.name for p in list_frames(tmp_path)] == ["00000.jpg", "00001.PNG", "00002.jpg", "x.bmp"]
    assert [p.name for p in list_frames(tmp_path, (".jpg",))] == ["00000.jpg", "00002.jpg"]
    with pytest.raises(DataError, match="nowhere"):
        list_frames(tmp_path / "nowhere")


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_label_map(tmp_path / "out" / "00000.png", np.ones((H, W), np.uint8))
    write_frame(tmp_path / "out" / "00000.jpg", np.zeros((H, W, 3), np.uint8))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00000.jpg", "00000.png"]


def test_failed_write_leaves_neither_partial_nor_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "00000.png"
    old = np.full((H, W), 2, np.uint8)
    write_label_map(target, old)

    def failing_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(str(fp)).write_bytes(b"\x89PNG partial")  # a half-written file, then a crash
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_label_map(target, np.ones((H, W), np.uint8))
    with pytest.raises(OSError, match="disk full"):
        write_label_map(tmp_path / "new.png", np.ones((H, W), np.uint8))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.png"]
    np.testing.assert_array_equal(read_label_map(target), old)  # the previous file survives intact


def test_atomic_path_moves_into_place_only_on_success(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "a" / "done.txt") as tmp:
        assert tmp.parent == tmp_path / "a" and tmp.name.startswith(".done.")
        tmp.write_text("ok")
    assert (tmp_path / "a" / "done.txt").read_text() == "ok"
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a" / "fail.txt") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["done.txt"]


def test_unsupported_image_mode_raises_naming_file(tmp_path: Path) -> None:
    Image.new("CMYK", (W, H)).save(tmp_path / "cmyk.jpg")
    with pytest.raises(DataError, match="cmyk.jpg"):
        read_label_map(tmp_path / "cmyk.jpg")
    assert io.VOID_LABEL == 255


def test_atomic_writes_get_normal_file_permissions(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    write_label_map(tmp_path / "m.png", np.zeros((H, W), np.uint8))
    write_frame(tmp_path / "f.jpg", np.zeros((H, W, 3), np.uint8))
    (tmp_path / "plain.txt").write_text("x")
    expected = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert expected == 0o666 & ~umask
    for name in ("m.png", "f.jpg"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected  # not mkstemp's 0o600
