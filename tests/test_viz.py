"""viz: overlay pixels, contact-sheet geometry, timeline/sweep/ablation PNGs, streamed overlay videos; the
OpenCV half loads no matplotlib."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ovsnet.data.io import DAVIS_PALETTE, DataError
from ovsnet.data.video_reader import iter_video_frames
from ovsnet.viz import (
    ablation_bar_plot,
    contact_sheet,
    overlay,
    path_timeline,
    save_png,
    sweep_plot,
    write_overlay_video,
)

H, W = 64, 80


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A flat grey frame; object 1 is a 30x30 square, object 2 a 12x12 square, a void strip at the bottom."""
    frame = np.full((H, W, 3), 100, np.uint8)
    labels = np.zeros((H, W), np.uint8)
    labels[5:35, 5:35] = 1
    labels[40:52, 60:72] = 2
    labels[60:, :10] = 255
    return frame, labels


def test_overlay_blends_objects_only() -> None:
    frame, labels = _scene()
    out = overlay(frame, labels, alpha=0.5, draw_ids=False, contours=False)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    expected = np.round(0.5 * 100 + 0.5 * DAVIS_PALETTE[1].astype(float)).astype(np.uint8)
    np.testing.assert_array_equal(out[10, 10], expected)
    np.testing.assert_array_equal(out[45, 65], np.round(50 + 0.5 * DAVIS_PALETTE[2].astype(float)))
    background = labels == 0
    np.testing.assert_array_equal(out[background], frame[background])
    np.testing.assert_array_equal(out[62, 2], frame[62, 2])  # void stays untouched
    np.testing.assert_array_equal(frame, 100)  # the input is not modified
    np.testing.assert_array_equal(overlay(frame, labels, alpha=0.0, draw_ids=False, contours=False), frame)


def test_overlay_contours_and_ids() -> None:
    frame, labels = _scene()
    plain = overlay(frame, labels, draw_ids=False, contours=False)
    with_contours = overlay(frame, labels, draw_ids=False, contours=True)
    np.testing.assert_array_equal(with_contours[5, 20], DAVIS_PALETTE[1])  # boundary: full object colour
    np.testing.assert_array_equal(with_contours[20, 20], plain[20, 20])  # interior: blended
    np.testing.assert_array_equal(with_contours[labels == 0], frame[labels == 0])
    with_ids = overlay(frame, labels, draw_ids=True, contours=False)
    changed = np.any(with_ids != plain, axis=2)
    assert (with_ids >= 200).all(axis=2).any()  # white id text
    assert changed[12:28, 12:28].any() and changed[38:54, 58:74].any()  # at each object's centroid
    near = np.zeros_like(changed)
    near[10:30, 10:30] = near[36:56, 56:76] = True
    assert not changed[~near].any()
    # far from both objects nothing moves
    np.testing.assert_array_equal(with_ids[:, 45:55], frame[:, 45:55])


def test_overlay_id_anchor_inside_non_convex_mask() -> None:
    frame = np.zeros((H, W, 3), np.uint8)
    labels = np.zeros((H, W), np.uint8)
    labels[5:60, 5:12] = 3  # an L shape whose centroid lies outside it
    labels[50:60, 5:75] = 3
    out = overlay(frame, labels, alpha=0.0, contours=False)
    ys, xs = np.nonzero((out >= 200).all(axis=2))
    assert len(ys) and np.all(ys >= 35)  # text near the mask, not in the empty upper-right region


def test_overlay_rejects_bad_input() -> None:
    frame, labels = _scene()
    with pytest.raises(DataError, match="differs from the frame size"):
        overlay(frame, labels[:-1])
    with pytest.raises(DataError, match="uint8 HxWx3"):
        overlay(frame[..., 0], labels)
    with pytest.raises(ValueError, match="alpha"):
        overlay(frame, labels, alpha=1.5)


def test_contact_sheet_size_and_captions() -> None:
    images = [np.full((H, W, 3), 40 * i, np.uint8) for i in range(5)]
    sheet = contact_sheet(images, columns=3, tile_width=40)
    assert sheet.dtype == np.uint8 and sheet.shape == (2 * 32 + 3 * 4, 3 * 40 + 4 * 4, 3)
    np.testing.assert_array_equal(sheet[4 + 10, 4 + 40 + 4 + 10], [40, 40, 40])  # 2nd tile
    captioned = contact_sheet(images, columns=3, tile_width=40, labels=[f"f{i}" for i in range(5)])
    assert captioned.shape[1] == sheet.shape[1] and captioned.shape[0] > sheet.shape[0]
    assert (captioned >= 200).all(axis=2).any()
    with pytest.raises(ValueError, match="labels"):
        contact_sheet(images, columns=2, tile_width=40, labels=["a"])
    with pytest.raises(ValueError, match="at least one"):
        contact_sheet([], columns=2, tile_width=40)


def test_save_png_roundtrip(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    save_png(tmp_path / "sub" / "a.png", image)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "sub" / "a.png")), image)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.png"]  # no temp file left
    with pytest.raises(DataError, match="uint8"):
        save_png(tmp_path / "b.png", image.astype(np.float32))


def test_path_timeline_png(tmp_path: Path) -> None:
    decisions = [{1: "iou"}, {1: "reid", 2: "iou"}, {1: "flow", 2: "absent"}, {1: "absent", 2: "flow"}]
    path_timeline(decisions, tmp_path / "timeline.png", figsize=(4.0, 2.0), dpi=50)
    with Image.open(tmp_path / "timeline.png") as image:
        assert image.format == "PNG" and image.size == (200, 100)
        pixels = np.asarray(image.convert("RGB"))
    # each path colour shows up in the image
    for colour in ((0x2C, 0xA0, 0x2C), (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E), (0xD6, 0x27, 0x28)):
        assert (np.abs(pixels.astype(int) - colour).sum(axis=2) < 10).any(), colour
    path_timeline([], tmp_path / "empty.png", figsize=(4.0, 2.0), dpi=50)  # a video of one frame
    assert (tmp_path / "empty.png").is_file()
    with pytest.raises(ValueError, match="unknown path"):
        path_timeline([{1: "teleport"}], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_sweep_and_ablation_plots(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "rho_reid": [2.5, 1.5, 2.0],
            "J-Mean": [0.6, 0.5, 0.7],
            "F-Mean": [0.65, 0.55, 0.72],
            "J&F-Mean": [0.625, 0.525, 0.71],
        }
    )
    sweep_plot(table, "rho_reid", tmp_path / "sweep.png", figsize=(5.0, 3.0), dpi=40)
    with Image.open(tmp_path / "sweep.png") as image:
        assert image.format == "PNG" and image.size == (200, 120)
    with pytest.raises(KeyError, match="rho_iou"):
        sweep_plot(table, "rho_iou", tmp_path / "x.png")
    with pytest.raises(KeyError, match="none of"):
        sweep_plot(table[["rho_reid"]], "rho_reid", tmp_path / "x.png")
    ablation = pd.DataFrame({"variant": ["full", "no MGA"], "J-Mean": [0.7, 0.6], "F-Mean": [0.75, 0.62]})
    ablation_bar_plot(ablation, "variant", tmp_path / "ablation.png", figsize=(4.0, 3.0), dpi=50)
    with Image.open(tmp_path / "ablation.png") as image:
        assert image.size == (200, 150)


def test_write_overlay_video_streams_frames(tmp_path: Path) -> None:
    frame, labels = _scene()
    frames = (np.roll(frame, t, axis=1) for t in range(5))
    maps = (np.roll(labels, t, axis=1) for t in range(5))
    assert write_overlay_video(frames, maps, tmp_path / "overlay.mp4", fps=10) == 5
    read = list(iter_video_frames(tmp_path / "overlay.mp4"))
    assert len(read) == 5 and read[0].shape == (H, W, 3)
    with pytest.raises(ValueError):
        write_overlay_video([frame] * 3, [labels] * 2, tmp_path / "short.mp4", fps=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overlay.mp4"]  # nothing half-written


def test_overlays_load_no_matplotlib() -> None:
    """The video CLI and the evaluation draw overlays only: matplotlib (slow to import) stays out of them."""
    code = (
        "import sys\n"
        "from ovsnet.viz import overlay, save_png, write_overlay_video\n"
        "import ovsnet.viz.overlays\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n"
        "from ovsnet.viz import path_timeline\n"
        "assert 'matplotlib' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
