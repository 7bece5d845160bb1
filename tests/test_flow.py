"""Flow backends: backward-flow semantics (zero motion, known translation) and the warp."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ovsnet.inference.flow import DISFlow, FarnebackFlow, RAFTFlow, build_flow, resize_flow, warp


def _textured(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """Smooth random texture: flow estimators need gradients everywhere."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (h // 4, w // 4, 3), dtype=np.uint8)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Content moves by (dx, dy): new[y, x] = old[y - dy, x - dx] (edges replicated)."""
    h, w = image.shape[:2]
    ys = np.clip(np.arange(h) - dy, 0, h - 1)
    xs = np.clip(np.arange(w) - dx, 0, w - 1)
    return image[ys][:, xs]


@pytest.mark.parametrize("backend", ["dis", "farneback"])
def test_zero_motion_gives_zero_flow(backend: str) -> None:
    image = _textured()
    flow = build_flow(backend, scale=1.0)(image, image)
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    assert np.percentile(np.abs(flow), 99) < 0.05
    assert np.abs(flow).max() < 0.5


@pytest.mark.parametrize(
    "backend,scale", [("dis", 1.0), ("dis", 0.5), ("farneback", 1.0), ("farneback", 0.5)]
)
def test_known_translation_is_backward_flow(backend: str, scale: float) -> None:
    prev = _textured()
    cur = _shift(prev, dx=3, dy=-2)  # content moved right 3, up 2
    flow = build_flow(backend, scale=scale)(prev, cur)
    inner = flow[16:-16, 16:-16]
    # each pixel of cur came from 3 px to the left and 2 px below in prev
    assert np.median(inner[..., 0]) == pytest.approx(-3.0, abs=0.3)
    assert np.median(inner[..., 1]) == pytest.approx(2.0, abs=0.3)


def test_warp_numpy_and_torch_agree_and_move_masks() -> None:
    mask = np.zeros((1, 40, 50), np.float32)
    mask[0, 10:20, 10:20] = 1.0
    flow = np.zeros((40, 50, 2), np.float32)
    flow[..., 0], flow[..., 1] = -5.0, 3.0  # current pixel (x, y) comes from (x - 5, y + 3)
    out_np = warp(mask, flow)
    out_t = warp(torch.from_numpy(mask), flow)
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_allclose(out_np, out_t.numpy(), atol=1e-5)
    expected = np.zeros_like(mask)
    expected[0, 7:17, 15:25] = 1.0
    np.testing.assert_allclose(out_np, expected, atol=1e-5)


def test_warp_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="HxWx2"):
        warp(np.zeros((1, 10, 10), np.float32), np.zeros((12, 10, 2), np.float32))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="unknown flow backend 'nope'"):
        build_flow("nope")
    with pytest.raises(ValueError, match="unknown DIS preset"):
        DISFlow(preset="slowest")
    with pytest.raises(ValueError, match="scale"):
        FarnebackFlow(scale=0.0)
    with pytest.raises(ValueError, match="same size"):
        DISFlow()(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 16, 3), np.uint8))


def test_raft_missing_weights_file_is_a_clear_error(tmp_path) -> None:
    missing = tmp_path / "raft.pth"
    with pytest.raises(FileNotFoundError, match="raft.pth"):
        RAFTFlow("raft_small", weights=missing, device="cpu")


def test_raft_random_weights_shape_and_dtype() -> None:
    estimator = build_flow("raft", variant="raft_small", weights=None, device="cpu", iters=2)
    image = _textured(64, 80)
    flow = estimator(image, _shift(image, 2, 0))
    assert flow.shape == (64, 80, 2) and flow.dtype == np.float32
    assert np.isfinite(flow).all()
    assert estimator.low_res(image, image).shape == (128, 128, 2)  # RAFT's minimum working size


@pytest.mark.parametrize("backend", ["dis", "farneback"])
def test_low_res_flow_is_the_full_flow_before_resizing(backend: str) -> None:
    prev = _textured()
    cur = _shift(prev, dx=4, dy=-2)
    low = build_flow(backend, scale=0.5).low_res(prev, cur)
    assert low.shape == (48, 64, 2)
    inner = low[8:-8, 8:-8]  # in half-resolution pixels: half the motion
    assert np.median(inner[..., 0]) == pytest.approx(-2.0, abs=0.2)
    assert np.median(inner[..., 1]) == pytest.approx(1.0, abs=0.2)
    np.testing.assert_allclose(resize_flow(low, 96, 128), build_flow(backend, scale=0.5)(prev, cur))


def test_resize_flow_scales_vectors_per_axis() -> None:
    flow = np.zeros((10, 20, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, -1.0
    out = resize_flow(flow, 30, 40)
    assert out.shape == (30, 40, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], 4.0)
    np.testing.assert_allclose(out[..., 1], -3.0)
    assert resize_flow(flow, 10, 20) is flow


def test_previous_frame_gray_is_reused_only_for_the_same_array() -> None:
    a, b = _textured(seed=1), _textured(seed=2)
    c = _shift(b, dx=2, dy=1)
    streaming = DISFlow(scale=0.5)
    streaming(a, b)
    np.testing.assert_array_equal(streaming(b, c), DISFlow(scale=0.5)(b, c))  # b's gray from the cache
    np.testing.assert_array_equal(streaming(b.copy(), a), DISFlow(scale=0.5)(b, a))  # a copy: converted anew


def test_dis_max_height_caps_the_working_resolution() -> None:
    """480 rows at scale 1.0 with max_height=240 work at half size; a short frame is left at full size."""
    tall = np.zeros((480, 64, 3), np.uint8)
    assert DISFlow(max_height=240).low_res(tall, tall).shape == (240, 32, 2)
    assert DISFlow(max_height=None).low_res(tall, tall).shape == (480, 64, 2)
    short = np.zeros((120, 64, 3), np.uint8)
    assert DISFlow(max_height=240).low_res(short, short).shape == (120, 64, 2)
    assert DISFlow(max_height=240)(tall, tall).shape == (480, 64, 2)
    with pytest.raises(ValueError, match="max_height"):
        DISFlow(max_height=4)
