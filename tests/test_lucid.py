"""Lucid Data Dreaming: exact labels, occlusion order, determinism, inpainting, pairs with consistent flow."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ovsnet.data.io import VOID_LABEL, DataError
from ovsnet.data.lucid import LucidConfig, LucidDreamer

H, W = 64, 96
GREY = (128, 128, 128)

# everything off but the object placement: outputs are exact copies of shifted source pixels
STILL = dict(
    bg_flip_p=0.0,
    bg_affine_p=0.0,
    bg_illumination_p=0.0,
    deform_p=0.0,
    scale_range=(1.0, 1.0),
    rotation_p=0.0,
    flip_p=0.0,
    illumination_p=0.0,
    blend="none",
)


def smooth_image(seed: int = 0, height: int = H, width: int = W) -> np.ndarray:
    """Low-frequency colour texture: bilinear warps of it are accurate, so flow checks are tight."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC), (5, 5), 0)


def scene(num_objects: int = 3, void: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    image = smooth_image(seed)
    labels = np.zeros((H, W), np.uint8)
    cv2.ellipse(labels, (22, 24), (10, 14), 0, 0, 360, 1, -1)
    if num_objects >= 2:
        cv2.rectangle(labels, (45, 30), (62, 50), 2, -1)
    if num_objects >= 3:
        cv2.circle(labels, (78, 16), 8, 3, -1)
    if void:
        cv2.rectangle(labels, (44, 29), (63, 51), VOID_LABEL, 1)
    return image, labels


def dreamer(**overrides: object) -> LucidDreamer:
    return LucidDreamer(LucidConfig(**overrides))


def test_config_defaults_follow_the_recipe_and_validate() -> None:
    cfg = LucidConfig()
    assert cfg.inpaint_radius == 7 and cfg.tps_points == 5 and cfg.tps_magnitude == 0.05
    assert cfg.scale_range == (0.85, 1.15) and cfg.rotation_deg == 30.0 and cfg.rotation_p == 0.5
    assert cfg.illum_a == (0.97, 1.03) and cfg.illum_b == (0.8, 1.2) and cfg.illum_c == (-0.05, 0.05)
    assert cfg.camera_rotation_deg == 3.0 and cfg.camera_scale_range == (0.95, 1.05)
    assert cfg.camera_translation == 0.05 and cfg.motion_types == ("both", "objects", "camera")
    assert LucidConfig(scale_range=[0.9, 1.1]).scale_range == (0.9, 1.1)  # Hydra hands lists
    for bad in (
        dict(scale_range=(1.2, 0.8)),
        dict(flip_p=2.0),
        dict(blend="poisson"),
        dict(motion_types=[]),
        dict(motion_types=["zoom"]),
    ):
        with pytest.raises(ValueError):
            LucidConfig(**bad)


@pytest.mark.parametrize("blend", ["feather", "seamless", "none"])
def test_sample_shapes_dtypes_and_label_values(blend: str) -> None:
    image, labels = scene(void=True)
    d = dreamer(blend=blend)
    allowed = {0, 1, 2, 3, VOID_LABEL}
    for seed in range(12):
        out, lab = d.sample(image, labels, np.random.default_rng(seed))
        assert out.shape == (H, W, 3) and out.dtype == np.uint8
        assert lab.shape == (H, W) and lab.dtype == np.uint8
        assert set(np.unique(lab).tolist()) <= allowed
        assert (lab[lab != VOID_LABEL] > 0).any()


def test_translation_only_is_an_exact_shift() -> None:
    image, labels = scene(num_objects=1)
    d = dreamer(**STILL)
    ys, xs = np.nonzero(labels)
    shifts = set()
    for seed in range(10):
        out, lab = d.sample(image, labels, np.random.default_rng(seed))
        oy, ox = np.nonzero(lab)
        dy, dx = int(oy.min() - ys.min()), int(ox.min() - xs.min())
        shifts.add((dy, dx))
        expected = np.zeros_like(labels)
        expected[ys + dy, xs + dx] = 1
        np.testing.assert_array_equal(lab, expected)  # nearest interpolation: no new or lost pixel
        np.testing.assert_array_equal(out[ys + dy, xs + dx], image[ys, xs])  # the object's own pixels
    assert len(shifts) > 3


def test_pasted_objects_occlude_in_depth_order() -> None:
    image = np.full((H, W, 3), GREY, np.uint8)
    labels = np.zeros((H, W), np.uint8)
    labels[5:25, 5:25] = 1
    labels[35:55, 60:80] = 2
    image[labels == 1] = (255, 0, 0)
    image[labels == 2] = (0, 0, 255)
    colours = {1: (255, 0, 0), 2: (0, 0, 255)}
    d = dreamer(**STILL, independent_p=1.0, keep_unselected_p=1.0)
    fronts = []
    for seed in range(150):
        out, lab = d.sample(image, labels, np.random.default_rng(seed))
        areas = {i: int((lab == i).sum()) for i in (1, 2)}
        for i in (1, 2):
            assert (out[lab == i] == colours[i]).all()  # each visible pixel shows its own object
        if areas[1] + areas[2] < 800:  # they overlap: the front square is whole, the back one is cut
            front = [i for i in (1, 2) if areas[i] == 400]
            assert len(front) == 1
            fronts.append(front[0])
    assert set(fronts) == {1, 2}  # random depth order: either can be in front


def test_feathering_keeps_object_interiors() -> None:
    image = np.full((H, W, 3), GREY, np.uint8)
    labels = np.zeros((H, W), np.uint8)
    labels[10:40, 10:40] = 1
    image[labels == 1] = (255, 0, 0)
    d = dreamer(**{**STILL, "blend": "feather"}, blend_width=2)
    out, lab = d.sample(image, labels, np.random.default_rng(3))
    inner = cv2.erode((lab == 1).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert inner.any() and (out[inner] == (255, 0, 0)).all()
    edge = (lab == 1) & ~inner
    assert (out[edge, 1] > 0).any()  # the band mixes with the grey it is pasted on


def test_same_seed_same_output_and_different_seeds_differ() -> None:
    image, labels = scene()
    image_copy, labels_copy = image.copy(), labels.copy()
    a, b = dreamer(), dreamer()
    for seed in range(4):
        out1, lab1 = a.sample(image, labels, np.random.default_rng(seed))
        out2, lab2 = b.sample(image, labels, np.random.default_rng(seed))
        np.testing.assert_array_equal(out1, out2)
        np.testing.assert_array_equal(lab1, lab2)
    outs = [a.sample(image, labels, np.random.default_rng(s))[0] for s in range(4)]
    assert all(not np.array_equal(outs[0], o) for o in outs[1:])
    pair1 = a.sample_pair(image, labels, np.random.default_rng(7))
    pair2 = b.sample_pair(image, labels, np.random.default_rng(7))
    for x, y in zip(pair1, pair2, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(image, image_copy)  # inputs are never written to
    np.testing.assert_array_equal(labels, labels_copy)


def test_inpainted_background_removes_the_object_colour() -> None:
    image = np.full((H, W, 3), GREY, np.uint8)
    labels = np.zeros((H, W), np.uint8)
    labels[20:44, 30:60] = 1
    image[labels == 1] = (230, 20, 20)
    d = dreamer()
    background = d.inpaint_background(image, labels)
    region = background[18:46, 28:62].astype(int)
    assert np.abs(region - 128).max() < 20
    assert np.array_equal(d.inpaint_background(image, labels), background)


def test_background_cache_is_bounded_and_reused() -> None:
    d = dreamer(cache_size=2)
    frames = [scene(seed=s) for s in range(3)]
    for image, labels in frames:
        d.sample(image, labels, np.random.default_rng(0))
    assert len(d._cache) == 2
    image, labels = frames[2]
    cached = next(reversed(d._cache.values()))
    assert d._source(image.copy(), labels.copy()) is cached  # keyed by content, not by array identity


def test_objects_never_all_vanish() -> None:
    image, labels = scene(num_objects=2)
    d = dreamer(rotation_p=1.0, scale_range=(0.5, 1.5))
    for seed in range(60):
        _, lab = d.sample(image, labels, np.random.default_rng(seed))
        assert ((lab > 0) & (lab < VOID_LABEL)).sum() >= 16


def _warp_back(values: np.ndarray, flow: np.ndarray, interpolation: int) -> np.ndarray:
    """Frame-0 values seen from frame 1 through the backward flow."""
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    return cv2.remap(
        values, gx + flow[..., 0], gy + flow[..., 1], interpolation, borderMode=cv2.BORDER_REPLICATE
    )


def _inside(flow: np.ndarray, margin: int = 3) -> np.ndarray:
    gx, gy = np.meshgrid(np.arange(W), np.arange(H))
    x, y = gx + flow[..., 0], gy + flow[..., 1]
    return (x >= margin) & (x <= W - 1 - margin) & (y >= margin) & (y <= H - 1 - margin)


def test_pair_outputs_and_camera_flow_warps_frame0_onto_frame1() -> None:
    image, labels = scene()
    d = dreamer(**STILL, motion_types=("camera",))
    for seed in range(5):
        img0, lab0, img1, lab1, flow = d.sample_pair(image, labels, np.random.default_rng(seed))
        assert img0.shape == img1.shape == (H, W, 3) and img1.dtype == np.uint8
        assert lab1.shape == (H, W) and lab1.dtype == np.uint8 and set(np.unique(lab1)) <= {0, 1, 2, 3}
        assert flow.shape == (H, W, 2) and flow.dtype == np.float32
        valid = _inside(flow)
        assert valid.mean() > 0.6
        warped = _warp_back(img0, flow, cv2.INTER_LINEAR).astype(int)
        assert np.abs(warped - img1.astype(int))[valid].mean() < 6.0
        agree = _warp_back(lab0, flow, cv2.INTER_NEAREST) == lab1
        assert agree[valid].mean() > 0.97


def test_pure_camera_translation_gives_constant_flow() -> None:
    image, labels = scene()
    d = dreamer(**STILL, motion_types=("camera",), camera_rotation_deg=0.0, camera_scale_range=(1.0, 1.0))
    _, _, _, _, flow = d.sample_pair(image, labels, np.random.default_rng(1))
    np.testing.assert_allclose(flow, np.broadcast_to(flow[0, 0], flow.shape), atol=1e-3)
    assert np.abs(flow[0, 0]).max() > 0 and abs(flow[0, 0, 0]) <= 0.05 * W + 1e-3
    assert abs(flow[0, 0, 1]) <= 0.05 * H + 1e-3


def test_object_motion_flow_is_zero_on_background_and_tracks_objects() -> None:
    image, labels = scene()
    d = dreamer(motion_types=("objects",), rotation_p=0.0, flip_p=0.0)
    moved = 0
    for seed in range(6):
        img0, lab0, img1, lab1, flow = d.sample_pair(image, labels, np.random.default_rng(seed))
        still = (lab1 == 0) & (cv2.dilate((lab0 > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) == 0)
        assert np.abs(flow[still]).max() < 1e-3
        objects = lab1 > 0
        moved += int(np.abs(flow[objects]).max() > 0.5)
        agree = _warp_back(lab0, flow, cv2.INTER_NEAREST) == lab1
        assert agree[objects].mean() > 0.9
        inner = cv2.erode(objects.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        inner &= cv2.erode(agree.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        warped = _warp_back(img0, flow, cv2.INTER_LINEAR).astype(int)
        if inner.any():  # object pixels of frame 1 show what frame 0 shows where the flow points
            assert np.abs(warped - img1.astype(int))[inner].mean() < 6.0
    assert moved > 0


def test_full_recipe_pair_labels_follow_the_flow() -> None:
    image, labels = scene(void=True)
    d = dreamer(rotation_p=1.0, flip_p=0.5)
    for seed in range(6):
        img0, lab0, img1, lab1, flow = d.sample_pair(image, labels, np.random.default_rng(seed))
        assert set(np.unique(lab0)) | set(np.unique(lab1)) <= {0, 1, 2, 3, VOID_LABEL}
        # frame-1 object pixels come from the same object in frame 0 (only where it was occluded or
        # eroded may they not); background pixels may be disoccluded, so they are not compared
        objects = _inside(flow, margin=1) & (lab1 > 0) & (lab1 != VOID_LABEL)
        agree = _warp_back(lab0, flow, cv2.INTER_NEAREST) == lab1
        assert objects.any() and agree[objects].mean() > 0.9


@pytest.mark.parametrize("void", [False, True])
def test_frames_without_objects(void: bool) -> None:
    image = smooth_image(3)
    labels = np.zeros((H, W), np.uint8)
    if void:
        labels[10:20, 10:20] = VOID_LABEL
    d = dreamer()
    for seed in range(5):
        out, lab = d.sample(image, labels, np.random.default_rng(seed))
        assert out.shape == (H, W, 3) and not lab.any()
        img0, lab0, img1, lab1, flow = d.sample_pair(image, labels, np.random.default_rng(seed))
        assert not lab0.any() and not lab1.any() and flow.shape == (H, W, 2)


def test_bad_input_raises_data_error() -> None:
    image, labels = scene()
    d = dreamer()
    rng = np.random.default_rng(0)
    with pytest.raises(DataError):
        d.sample(image, labels[:-1], rng)
    with pytest.raises(DataError):
        d.sample_pair(image[:, :-2], labels, rng)
    with pytest.raises(DataError):
        d.sample(image.astype(np.float32), labels, rng)
    with pytest.raises(DataError):
        d.sample(image, labels.astype(np.int32) + 300, rng)
    out, lab = d.sample(image, labels.astype(np.int64), rng)  # wider integer label maps are accepted
    assert lab.dtype == np.uint8


def test_still_pair_has_zero_flow_and_separate_arrays() -> None:
    image, labels = scene()
    d = dreamer(
        **STILL,
        motion_types=("camera",),
        camera_rotation_deg=0.0,
        camera_scale_range=(1.0, 1.0),
        camera_translation=0.0,
    )
    img0, lab0, img1, lab1, flow = d.sample_pair(image, labels, np.random.default_rng(0))
    assert not flow.any()
    np.testing.assert_array_equal(img0, img1)
    np.testing.assert_array_equal(lab0, lab1)
    assert not np.shares_memory(img0, img1) and not np.shares_memory(lab0, lab1)


def test_config_from_a_hydra_node() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    node = omegaconf.OmegaConf.create(
        {"scale_range": [0.9, 1.1], "motion_types": ["camera"], "deform_p": 0.0}
    )
    cfg = LucidConfig(**dict(node))
    assert cfg.scale_range == (0.9, 1.1) and cfg.motion_types == ("camera",)
    image, labels = scene()
    out, lab = LucidDreamer(cfg).sample(image, labels, np.random.default_rng(0))
    assert out.shape == image.shape and lab.any()
