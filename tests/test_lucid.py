"""Lucid Data Dreaming: exact labels, occlusion order, determinism, inpainting, the thin-plate spline."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ovsnet.data.io import VOID_LABEL, DataError
from ovsnet.data.lucid import LucidConfig, LucidDreamer
from ovsnet.data.lucid.geometry import ThinPlateSpline

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
    assert LucidConfig(scale_range=[0.9, 1.1]).scale_range == (0.9, 1.1)  # Hydra hands lists
    for bad in (
        dict(scale_range=(1.2, 0.8)),
        dict(flip_p=2.0),
        dict(blend="poisson"),
        dict(inpaint_method="patch"),
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


def test_bad_input_raises_data_error() -> None:
    image, labels = scene()
    d = dreamer()
    rng = np.random.default_rng(0)
    with pytest.raises(DataError):
        d.sample(image, labels[:-1], rng)
    with pytest.raises(DataError):
        d.sample(image[:, :-2], labels, rng)
    with pytest.raises(DataError):
        d.sample(image.astype(np.float32), labels, rng)
    with pytest.raises(DataError):
        d.sample(image, labels.astype(np.int32) + 300, rng)
    out, lab = d.sample(image, labels.astype(np.int64), rng)  # wider integer label maps are accepted
    assert lab.dtype == np.uint8


def test_config_from_a_hydra_node() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    node = omegaconf.OmegaConf.create({"scale_range": [0.9, 1.1], "illum_a": [0.9, 1.1], "deform_p": 0.0})
    cfg = LucidConfig(**dict(node))
    assert cfg.scale_range == (0.9, 1.1) and cfg.illum_a == (0.9, 1.1)
    image, labels = scene()
    out, lab = LucidDreamer(cfg).sample(image, labels, np.random.default_rng(0))
    assert out.shape == image.shape and lab.any()


def test_thin_plate_spline_fits_its_control_points_and_keeps_affine_maps() -> None:
    rng = np.random.default_rng(0)
    dst = rng.uniform(0, 100, (9, 2))
    src = dst + rng.uniform(-5, 5, dst.shape)
    x, y = ThinPlateSpline(dst, src, regularization=0.0)(dst[:, 0], dst[:, 1])
    np.testing.assert_allclose(np.stack([x, y], 1), src, atol=1e-3)
    # an affine displacement is reproduced exactly everywhere, even far from the control points
    matrix = np.array([[1.05, 0.1, 3.0], [-0.05, 0.95, -2.0]])
    moved = dst @ matrix[:, :2].T + matrix[:, 2]
    gx, gy = np.meshgrid(np.arange(0, 160, 7, dtype=np.float32), np.arange(-30, 130, 11, dtype=np.float32))
    x, y = ThinPlateSpline(dst, moved, regularization=1e-3)(gx, gy)
    assert x.shape == gx.shape and x.dtype == np.float32
    np.testing.assert_allclose(x, matrix[0, 0] * gx + matrix[0, 1] * gy + matrix[0, 2], atol=1e-2)
    np.testing.assert_allclose(y, matrix[1, 0] * gx + matrix[1, 1] * gy + matrix[1, 2], atol=1e-2)


def test_deformation_moves_the_outline_but_keeps_labels_exact() -> None:
    image, labels = scene(num_objects=1)
    d = dreamer(**{**STILL, "deform_p": 1.0, "tps_magnitude": 0.15})
    changed = 0
    for seed in range(8):
        out, lab = d.sample(image, labels, np.random.default_rng(seed))
        assert set(np.unique(lab).tolist()) <= {0, 1} and (lab == 1).sum() >= 16
        ys, xs = np.nonzero(lab)
        crop = lab[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        oy, ox = np.nonzero(labels)
        orig = labels[oy.min() : oy.max() + 1, ox.min() : ox.max() + 1]
        changed += crop.shape != orig.shape or not np.array_equal(crop, orig)
    assert changed >= 6  # the spline reshapes the object, not only shifts it
