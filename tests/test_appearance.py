"""Appearance memory (ImageNet EfficientNet-Lite features matched against the first frame) and the mask
correction the segmenter applies with it: band, prior, real photographs, and a drifting mask pulled back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

from ovsnet.data.io import DataError
from ovsnet.inference import appearance as appearance_module
from ovsnet.inference import matching as matching_module
from ovsnet.inference.appearance import (
    AppearanceMemory,
    band_pixels,
    best_matches,
    bounding_window,
    correct_masks,
    dilate,
    first_argmax,
    resize_window,
    top_k_mean,
)
from ovsnet.inference.flow import ZeroFlow
from ovsnet.inference.network_features import network_features
from ovsnet.inference.no_network import NoNetwork
from ovsnet.inference.segmenter import VideoSegmenter
from ovsnet.inference.settings import AppearanceSettings, resolve
from ovsnet.models.ovsnet import build_ovsnet
from tests.tiny_models import TINY_MODEL, FakeModel, make_video

H, W = 96, 128


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def test_dilate_grows_masks_by_a_square_of_the_radius() -> None:
    mask = torch.zeros(1, 9, 9, dtype=torch.bool)
    mask[0, 4, 4] = True
    grown = dilate(mask, 2)
    assert grown.dtype == torch.bool and int(grown.sum()) == 25 and bool(grown[0, 2:7, 2:7].all())
    assert torch.equal(dilate(mask, 0), mask)
    assert band_pixels((96, 128, 3), 0.05) == 5 and band_pixels((10, 10), 0.0) == 1


def test_dilate_equals_one_square_max_pool_at_every_size_and_border() -> None:
    """OpenCV's dilation (CPU) gives the masks the plain (2r+1)² max pool gives, borders and r > size included."""
    torch.manual_seed(0)
    for shape in [(3, 48, 85), (1, 5, 7), (2, 1, 30)]:
        masks = torch.rand(*shape) > 0.95
        for radius in (1, 3, 24):
            pooled = torch.nn.functional.max_pool2d(masks[:, None].float(), 2 * radius + 1, 1, radius)
            assert torch.equal(dilate(masks, radius), pooled[:, 0] > 0), (shape, radius)


def test_correct_masks_moves_pixels_only_within_the_band_and_by_the_prior() -> None:
    probs = torch.zeros(2, 10, 10)
    probs[0, 2:5, 2:5] = 1.0  # object 1's mask; object 2 absent (no mask)
    allowed = dilate(probs > 0.5, 1)
    looks = torch.zeros(3, 10, 10)
    looks[0] = 0.1  # background
    looks[1] = 0.85  # everything looks like object 1 ...
    looks[2] = 0.05
    looks[:, 3, 3] = torch.tensor([0.98, 0.01, 0.01])  # ... except one pixel, clearly background
    out = correct_masks(probs, looks, allowed, prior_power=0.25)
    assert out.shape == (2, 10, 10) and set(out.unique().tolist()) <= {0.0, 1.0}
    assert bool(out[0, 1:6, 1:6].sum() == 24) and out[0, 3, 3] == 0  # grown to the band, the hole cut
    assert out[0].sum() == 24 and out[1].sum() == 0  # nothing beyond the band; the absent object stays absent
    # a strong prior keeps the cascade's mask against weak appearance evidence
    kept = correct_masks(probs, looks, allowed, prior_power=4.0)
    assert torch.equal(kept, (probs > 0.5).float())
    # half the evidence is not enough to leave the mask (prior floor 1e-3 ** 0.25 = 0.18)
    weak = looks.clone()
    weak[0], weak[1] = 0.3, 0.65
    assert torch.equal(correct_masks(probs, weak, allowed, 0.25)[0, 1, :], torch.zeros(10))
    with pytest.raises(ValueError, match="do not match"):
        correct_masks(probs, looks[:2], allowed, 0.25)


def _photo_scene(dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """A cat crop and a coffee-cup crop (scikit-image's sample photos) pasted on the astronaut photo."""
    import cv2

    frame = cv2.resize(skdata.astronaut(), (W, H))
    labels = np.zeros((H, W), np.uint8)
    for obj, photo, (y, x) in ((1, skdata.chelsea(), (20, 15)), (2, skdata.coffee(), (50, 70))):
        patch = cv2.resize(photo, (36, 30))
        y, x = y + dy, x + dx
        frame[y : y + 30, x : x + 36] = patch
        labels[y : y + 30, x : x + 36] = obj
    return frame, labels


def test_memory_tells_real_photographs_apart_after_they_move() -> None:
    memory = AppearanceMemory()
    first, first_labels = _photo_scene(0, 0)
    memory.remember(first, first_labels, [1, 2])
    assert sorted(memory.memory) == [0, 1, 2] and all(m.shape[0] > 0 for m in memory.memory.values())
    frame, labels = _photo_scene(6, 8)
    probs = memory.probabilities(frame, [1, 2])
    assert probs.shape == (3, H, W) and torch.allclose(probs.sum(0), torch.ones(H, W), atol=1e-4)
    guess = probs.argmax(0).numpy()
    for obj in (1, 2):
        assert _iou(guess == obj, labels == obj) > 0.6, obj
    # only the region is matched: elsewhere every label is equally likely
    region = torch.zeros(H, W, dtype=torch.bool)
    region[:48] = True
    part = memory.probabilities(frame, [1, 2], region)
    assert torch.allclose(part[:, -1, :], torch.full((3, W), 1 / 3), atol=1e-4)
    window = memory.probabilities(frame, [1, 2], region, window=(5, 40, 7, 70))
    torch.testing.assert_close(window, part[:, 5:40, 7:70], atol=1e-6, rtol=0)
    with pytest.raises(DataError, match=r"object\(s\) \[7\]"):
        memory.probabilities(frame, [1, 7])
    with pytest.raises(DataError, match="object 9 has no pixel"):
        memory.remember(first, first_labels, [9])


def test_first_annotation_remembers_the_cells_mostly_each_objects_own() -> None:
    """An object remembers the feature cells at least half its own: a cell on its outline is mostly background
    and taught a small object's memory to match the background beside it. An object too small for
    MIN_OBJECT_CELLS such cells remembers every cell it touches."""
    memory = AppearanceMemory()
    first, labels = _photo_scene(0, 0)
    labels[5:7, 100:102] = 3  # 2x2 pixels: a few cells of the stride-4 grid, none wholly its own
    memory.remember(first, labels, [1, 2, 3])
    feats = memory.features(first)
    c, h, w = feats.shape
    for obj in (1, 2, 3):
        mask = torch.from_numpy(labels == obj)[None, None].float()
        cover = F.adaptive_avg_pool2d(mask, (h, w)).flatten()
        touched = F.adaptive_max_pool2d(mask, (h, w)).flatten() > 0
        owned = cover >= appearance_module.OBJECT_COVER
        bank = memory.memory[obj]
        similarity, cell = (bank.T @ feats.reshape(c, -1)).max(1)  # the cell each vector came from
        assert bool((similarity > 1 - 1e-4).all())
        if obj == 3:
            assert int(owned.sum()) < appearance_module.MIN_OBJECT_CELLS
            assert bank.shape[1] == int(touched.sum())
            assert bool(touched[cell].all())
        else:
            assert int(touched.sum()) > int(owned.sum()) >= appearance_module.MIN_OBJECT_CELLS
            assert bank.shape[1] == int(owned.sum())
            assert bool((cover[cell] >= appearance_module.OBJECT_COVER).all()), obj


def test_memory_update_remembers_interior_cells_of_the_frame_last_matched() -> None:
    """Beside the first annotation (always kept), each update adds up to update_cells cells per label, taken
    from the features of the frame just matched and only well inside the label (not at its outline); the
    latest update_frames updates are kept; for a frame that was not the one matched nothing is added."""
    memory = AppearanceMemory(AppearanceSettings(update_cells=10, update_frames=2))
    first, first_labels = _photo_scene(0, 0)
    memory.remember(first, first_labels, [1, 2])
    annotated = {label: bank.clone() for label, bank in memory.memory.items()}
    assert memory.remember_segmentation(first, torch.from_numpy(first_labels)) == 0  # nothing matched yet
    frame, labels = _photo_scene(6, 8)
    memory.probabilities(frame, [1, 2])
    assert memory.remember_segmentation(frame.copy(), torch.from_numpy(labels)) == 0  # not the frame matched
    assert memory.remember_segmentation(frame, torch.from_numpy(labels)) == 3 * 10
    assert memory.remember_segmentation(frame, torch.from_numpy(labels)) == 0  # each matched frame once
    feats = memory.features(frame)
    c, h, w = feats.shape
    cell_h, cell_w = H / h, W / w
    for label, bank in memory.memory.items():
        assert bank.shape == (c, annotated[label].shape[1] + 10)
        torch.testing.assert_close(bank[:, : annotated[label].shape[1]], annotated[label])
        where = (bank[:, -10:].T @ feats.reshape(c, -1)).argmax(1)  # the cell each vector came from
        for cell in where.tolist():
            y, x = (cell // w + 0.5) * cell_h, (cell % w + 0.5) * cell_w
            # the cell and its neighbours lie inside the label: nothing from the outline
            ys = np.clip([y - 1.5 * cell_h, y, y + 1.5 * cell_h], 0, H - 1).astype(int)
            xs = np.clip([x - 1.5 * cell_w, x, x + 1.5 * cell_w], 0, W - 1).astype(int)
            assert (labels[np.ix_(ys, xs)] == label).all(), (label, y, x)
    # an object missing from the segmentation gets nothing; only the latest two updates are kept
    gone = np.where(labels == 2, 0, labels)
    for _ in range(2):
        memory.probabilities(frame, [1, 2])
        assert memory.remember_segmentation(frame, torch.from_numpy(gone)) == 2 * 10
    assert memory.memory[1].shape[1] == annotated[1].shape[1] + 2 * 10
    assert memory.memory[2].shape[1] == annotated[2].shape[1] + 10
    memory.reset()
    assert memory.memory == {}


def test_segmenter_updates_the_appearance_memory_every_n_frames() -> None:
    frames, labels = make_video(num_frames=5)
    sizes = {}
    for every in (2, None):
        segmenter = VideoSegmenter(
            NoNetwork(), ZeroFlow(), resolve(overrides={"appearance.update_every": every})
        )
        segmenter.start(frames[0], labels[0])
        history = [{k: v.shape[1] for k, v in segmenter._appearance.memory.items()}]
        for frame in frames[1:]:
            segmenter.step(frame)
            history.append({k: v.shape[1] for k, v in segmenter._appearance.memory.items()})
        sizes[every] = history
    grew = [
        any(after[k] > before[k] for k in after)
        for before, after in zip(sizes[2][:-1], sizes[2][1:], strict=True)
    ]
    assert grew == [False, True, False, True]  # frames 2 and 4
    assert all(h == sizes[None][0] for h in sizes[None])
    with pytest.raises(ValueError, match="update_every"):
        resolve(overrides={"appearance.update_every": 0})
    with pytest.raises(ValueError, match="update_frames"):
        resolve(overrides={"appearance.update_frames": 0})


@pytest.mark.parametrize("window", [(30, 60, 40, 90), (0, 20, 0, 30), (70, H, 100, W), (0, H, 0, W)])
def test_window_features_are_the_whole_frames_features_around_the_window(window: tuple) -> None:
    """The trunk runs on a crop around the window; its cells line up with the whole frame's grid and, away
    from the crop's edges inside the frame, hold the same features, so matching a region sees no crop."""
    memory = AppearanceMemory()
    frame, _ = _photo_scene(3, 5)
    full = memory.features(frame)
    assert all(side % appearance_module.TRUNK_STRIDE == 0 for side in memory._resized_size(frame.shape[:2]))
    crop, (oy, ox) = memory.window_features(frame, window)
    assert oy >= 0 and ox >= 0 and oy + crop.shape[1] <= full.shape[1] and ox + crop.shape[2] <= full.shape[2]
    margin = appearance_module.WINDOW_MARGIN // appearance_module.GRID_STRIDE
    top, left = (0 if oy == 0 else margin), (0 if ox == 0 else margin)
    bottom = crop.shape[1] - (0 if oy + crop.shape[1] == full.shape[1] else margin)
    right = crop.shape[2] - (0 if ox + crop.shape[2] == full.shape[2] else margin)
    assert bottom > top and right > left
    # sides of whole quanta, or the frame's: the trunk sees few sizes (oneDNN reuses their kernels)
    quantum = appearance_module.WINDOW_QUANTUM // appearance_module.GRID_STRIDE
    assert all(n % quantum == 0 or n == f for n, f in zip(crop.shape[1:], full.shape[1:], strict=True))
    same = full[:, oy + top : oy + bottom, ox + left : ox + right]
    torch.testing.assert_close(crop[:, top:bottom, left:right], same, atol=5e-3, rtol=0)
    if window == (0, H, 0, W):
        assert crop.shape == full.shape


def test_matching_a_region_runs_the_trunk_on_its_window_only(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = AppearanceMemory()
    first, first_labels = _photo_scene(0, 0)
    memory.remember(first, first_labels, [1, 2])
    frame, _ = _photo_scene(6, 8)
    region = torch.zeros(H, W, dtype=torch.bool)
    region[40:70, 50:110] = True
    seen = []
    crop = memory.window_features
    monkeypatch.setattr(memory, "window_features", lambda f, w: seen.append(w) or crop(f, w))
    part = memory.probabilities(frame, [1, 2], region)
    assert seen == [(40, 70, 50, 110)]
    monkeypatch.setattr(memory, "window_features", lambda f, w: (memory.features(f), (0, 0)))
    whole = memory.probabilities(frame, [1, 2], region)
    torch.testing.assert_close(part, whole, atol=2e-3, rtol=0)


def test_a_mask_flow_cannot_move_follows_its_object_by_appearance() -> None:
    """No detections, no motion (zero flow): the cascade alone leaves the masks where they were in frame 0;
    with appearance each mask follows its textured square, a band's width per frame."""
    frames, labels = make_video(num_frames=6)
    blind = set(range(1, 7))
    results = {}
    for appearance in (None, "efficientnet_lite0"):
        seg = VideoSegmenter(
            FakeModel(blind_calls=blind),
            ZeroFlow(),
            resolve(overrides={"appearance.backbone": appearance, "appearance.band": 0.06}),
        )
        seg.start(frames[0], labels[0])
        outputs = [seg.step(f) for f in frames[1:]]
        results[appearance] = [_iou(outputs[-1] == obj, labels[-1] == obj) for obj in (1, 2)]
        assert (seg.timings["appearance"] > 0) == (appearance is not None)
    assert max(results[None]) < 0.5
    assert min(results["efficientnet_lite0"]) > 0.7


def test_config_rejects_unknown_backbones_and_bad_ranges() -> None:
    with pytest.raises(ValueError, match="appearance.backbone must be null"):
        AppearanceMemory(AppearanceSettings(backbone="resnet18"))
    with pytest.raises(ValueError, match="appearance.band"):
        resolve(overrides={"appearance.band": 1.5})
    with pytest.raises(ValueError, match="short_side"):
        AppearanceSettings(short_side=8)


@pytest.mark.parametrize(("grid", "size"), [((7, 9), (30, 41)), ((30, 41), (7, 9)), ((5, 5), (5, 5))])
def test_resize_window_is_that_window_of_the_full_interpolation(
    grid: tuple[int, int], size: tuple[int, int]
) -> None:
    """Up, down and unit scale; windows touching each border and one pixel wide."""
    values = torch.rand(3, *grid, generator=torch.Generator().manual_seed(0))
    full = F.interpolate(values[None], size=size, mode="bilinear", align_corners=False)[0]
    h, w = size
    for window in ((0, h, 0, w), (1, h // 2, 2, w - 1), (h - 1, h, 0, 1)):
        y0, y1, x0, x1 = window
        torch.testing.assert_close(resize_window(values, size, window), full[:, y0:y1, x0:x1])


def test_bounding_window_of_a_mask() -> None:
    mask = torch.zeros(6, 8, dtype=torch.bool)
    assert bounding_window(mask) is None
    mask[2, 3] = mask[4, 6] = True
    assert bounding_window(mask) == (2, 5, 3, 7)


def test_first_argmax_is_argmax_with_ties_to_the_first_label() -> None:
    scores = torch.randint(0, 3, (4, 9, 11), generator=torch.Generator().manual_seed(1)).float()
    assert scores.max(0).values.eq(scores).sum(0).gt(1).any()  # ties present
    assert torch.equal(first_argmax(scores), scores.argmax(0))
    assert torch.equal(first_argmax(scores[:1]), torch.zeros(9, 11, dtype=torch.long))


@pytest.mark.parametrize(("columns", "k"), [(4096, 4), (1000, 4), (300, 7), (64 * 4, 4), (130, 1), (3, 4)])
def test_top_k_mean_is_the_mean_of_each_rows_k_largest_values(columns: int, k: int) -> None:
    """Memories of any size (whole groups and a remainder, fewer groups than k, fewer columns than k), with
    the largest values crowded into one group and ties across groups."""
    sim = torch.rand(50, columns, generator=torch.Generator().manual_seed(columns))
    sim[:10, : min(columns, 8)] += 1.0  # all of some rows' best values in the first group
    sim[10:20] = sim[10:20].mul(4).round()  # many equal maxima
    expected = sim.topk(min(k, columns), dim=1).values.mean(1)
    torch.testing.assert_close(top_k_mean(sim, k), expected, rtol=0, atol=1e-6)


def test_best_matches_in_blocks_equal_one_product(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(3)
    queries = F.normalize(torch.randn(1000, 16, generator=generator), dim=1)
    bank = F.normalize(torch.randn(16, 700, generator=generator), dim=0)
    expected = (queries @ bank).topk(4, dim=1).values.mean(1)
    monkeypatch.setattr(matching_module, "MATCH_BLOCK", 700 * 128)  # blocks of 128 queries
    real, blocks = top_k_mean, []
    monkeypatch.setattr(matching_module, "top_k_mean", lambda sim, k: blocks.append(len(sim)) or real(sim, k))
    torch.testing.assert_close(best_matches(queries, bank, 4), expected, rtol=0, atol=1e-6)
    assert blocks == [128] * 7 + [104]


def _tiny_ovsnet(backbone: str = "resnet18") -> torch.nn.Module:
    """A tiny OVSNet whose BN layers hold non-trivial statistics (so folding them changes the weights)."""
    torch.manual_seed(0)
    model = build_ovsnet(**{**TINY_MODEL, "backbone": backbone, "fpn_channels": 32}).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_lite0"])
def test_network_features_are_the_detectors_fine_levels_and_finest_fpn_level(backbone: str) -> None:
    """From the trunk's normalised frame: the detector backbone's two finest body levels and its FPN level "0"
    on its own normalisation, with BN folded into a copy (the detector keeps its BN layers)."""
    model = _tiny_ovsnet(backbone)
    detector = model.detector
    network = network_features(model)
    assert network is not None
    raw = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1)) * 255
    mean = torch.tensor(detector.transform.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(detector.transform.image_std).view(1, 3, 1, 1)
    with torch.inference_mode():
        normalised = (raw / 255 - mean) / std
        expected_top = detector.backbone(normalised)["0"]
        body = detector.backbone.body(normalised)
        expected_fine = list(body.values() if isinstance(body, dict) else body)[:2]
        fine, top = network((raw - 127.0) / 128.0)
    assert top.shape == expected_top.shape == (1, 32, 16, 24)
    torch.testing.assert_close(top, expected_top, atol=1e-3 * float(expected_top.abs().max()), rtol=0)
    assert [f.shape[-2:] for f in fine] == [(16, 24), (8, 12)]  # strides 4 and 8
    for got, expected in zip(fine, expected_fine, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-3 * float(expected.abs().max()), rtol=0)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in detector.backbone.modules())


def test_memory_mixes_the_networks_fine_levels_and_fpn_level_by_their_shares() -> None:
    """With a network, its one backbone pass replaces the ImageNet trunk (not even built); a dot product of
    two feature vectors is 0.7 x the fine levels' cosine + 0.3 x the FPN level's."""
    network = network_features(_tiny_ovsnet())
    frame, _ = _photo_scene(0, 0)
    imagenet = AppearanceMemory(AppearanceSettings(network_share=0.3))  # no network given
    memory = AppearanceMemory(AppearanceSettings(network_share=0.3), network=network)
    assert imagenet.trunk is not None and memory.trunk is None
    mixed = memory.features(frame)
    assert imagenet.features(frame).shape == (64, *mixed.shape[1:])
    with torch.inference_mode():
        fine, top = network(memory._resized(frame))
    grid = mixed.shape[1:]
    assert mixed.shape[0] == sum(f.shape[1] for f in fine) + top.shape[1] == 64 + 128 + 32
    torch.testing.assert_close(mixed.norm(dim=0), torch.ones(grid), atol=1e-5, rtol=0)

    def unit(parts: list[torch.Tensor]) -> torch.Tensor:
        up = [F.normalize(F.interpolate(p, size=grid, mode="bilinear"), dim=1) for p in parts]
        return F.normalize(torch.cat(up, dim=1), dim=1)[0].flatten(1)

    fine_units, top_units = unit(fine), unit([top])
    a, b = mixed.flatten(1)[:, :50], mixed.flatten(1)[:, 50:100]
    expected = (
        0.7 * fine_units[:, :50].T @ fine_units[:, 50:100] + 0.3 * top_units[:, :50].T @ top_units[:, 50:100]
    )
    torch.testing.assert_close(a.T @ b, expected, atol=1e-5, rtol=0)


def test_segmenter_matches_in_the_networks_features_only_when_it_has_them() -> None:
    frames, labels = make_video(num_frames=3)
    model = _tiny_ovsnet()
    shared = VideoSegmenter(model, ZeroFlow())
    assert shared._appearance is not None and shared._appearance.network is not None
    shared.start(frames[0], labels[0])
    assert all(bank.shape[0] == 64 + 128 + 32 for bank in shared._appearance.memory.values())
    assert shared.step(frames[1]).shape == labels[1].shape
    for other, overrides in (
        (model, {"appearance.network_share": 0.0}),
        (NoNetwork(), {}),
        (FakeModel(), {}),
    ):
        segmenter = VideoSegmenter(other, ZeroFlow(), resolve(overrides=overrides))
        assert segmenter._appearance is not None and segmenter._appearance.network is None
    with pytest.raises(ValueError, match="appearance.network_share"):
        resolve(overrides={"appearance.network_share": 1.5})


def test_appearance_precision_is_bfloat16_only_where_the_cpu_multiplies_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``auto`` picks bfloat16 on a CPU with AMX tiles and float32 on any other CPU or device; the named
    formats are taken as they are; anything else is refused naming the key."""
    matching_dtype = matching_module.matching_dtype
    for amx in (True, False):
        monkeypatch.setattr(matching_module, "_cpu_has_amx", lambda amx=amx: amx)
        assert matching_dtype("auto", "cpu") == (torch.bfloat16 if amx else torch.float32)
        assert matching_dtype("auto", "cuda") == torch.float32
        assert matching_dtype("float32", "cpu") == torch.float32
        assert matching_dtype("bfloat16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="inference.appearance.precision"):
        matching_dtype("float16", "cpu")
    with pytest.raises(ValueError, match="inference.appearance.precision"):
        resolve(overrides={"appearance.precision": "fp16"})


def test_bfloat16_memory_matches_the_network_features_like_float32() -> None:
    """In bfloat16 the network's pass and the memory are bfloat16 while features and probabilities stay
    float32, and the probabilities are those of float32 up to rounding; without a network (the ImageNet
    trunk's narrow features) the memory stays float32 whatever the setting."""
    first, first_labels = _photo_scene(0, 0)
    frame, _ = _photo_scene(6, 8)
    results = {}
    for precision in ("float32", "bfloat16"):
        memory = AppearanceMemory(
            AppearanceSettings(precision=precision), network=network_features(_tiny_ovsnet())
        )
        assert memory.network is not None and memory.network.dtype == getattr(torch, precision)
        memory.remember(first, first_labels, [1, 2])
        assert {bank.dtype for bank in memory.memory.values()} == {getattr(torch, precision)}
        assert memory.features(frame).dtype == torch.float32
        results[precision] = memory.probabilities(frame, [1, 2])
    exact, rounded = results["float32"], results["bfloat16"]
    assert rounded.dtype == torch.float32
    assert float((exact - rounded).abs().mean()) < 0.02
    assert float((exact.argmax(0) == rounded.argmax(0)).float().mean()) > 0.97
    imagenet = AppearanceMemory(AppearanceSettings(precision="bfloat16"))
    imagenet.remember(first, first_labels, [1, 2])
    assert imagenet.network is None and {b.dtype for b in imagenet.memory.values()} == {torch.float32}


def test_a_mask_past_its_band_grows_one_band_more_per_grow_step() -> None:
    """A mask that shrank to a part of its object (a rider's wheel) takes back at most one band per correction;
    with ``appearance.grow`` it is corrected again from the grown mask when it reaches its band's edge, so it
    recovers more of the object in the same frame, and never more than that many bands further."""
    first, labels = _photo_scene(0, 0)
    truth = labels == 1
    part = np.zeros_like(labels)
    part[29:41, 27:39] = 1  # a 12x12 piece of the 30x36 cat
    band = band_pixels(first.shape, AppearanceSettings().band)
    grown = {}
    for steps in (0, 1, 2):
        segmenter = VideoSegmenter(NoNetwork(), ZeroFlow(), resolve(overrides={"appearance.grow": steps}))
        segmenter.start(first, labels)
        segmenter._prev_labels = torch.from_numpy(part)  # what a drifted segmentation left of object 1
        grown[steps] = segmenter.step(first) == 1
        reach = dilate(torch.from_numpy(part == 1)[None], band * (steps + 1))[0].numpy()
        assert not (grown[steps] & ~reach).any(), steps  # at most steps + 1 bands from the piece
    assert grown[0].sum() < grown[1].sum() < grown[2].sum()
    assert (grown[1] & ~dilate(torch.from_numpy(part == 1)[None], band)[0].numpy()).any()
    assert _iou(grown[0], truth) < _iou(grown[1], truth) < _iou(grown[2], truth)
    with pytest.raises(ValueError, match="grow >= 0"):
        resolve(overrides={"appearance.grow": -1})


def test_matching_a_frame_again_scores_only_the_new_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second match of the frame just matched (a mask grown past its band) reuses the scores of the cells
    already matched and matches only the others, with the same probabilities as one match of the larger
    region; a memory update starts afresh."""
    first, first_labels = _photo_scene(0, 0)
    frame, _ = _photo_scene(6, 8)
    small, large = torch.zeros(H, W, dtype=torch.bool), torch.zeros(H, W, dtype=torch.bool)
    small[20:60, 20:70], large[10:80, 10:110] = True, True
    fresh = AppearanceMemory()
    fresh.remember(first, first_labels, [1, 2])
    expected = fresh.probabilities(frame, [1, 2], large)
    memory = AppearanceMemory()
    memory.remember(first, first_labels, [1, 2])
    matched, real = [], appearance_module.best_matches
    monkeypatch.setattr(
        appearance_module, "best_matches", lambda q, bank, k: matched.append(len(q)) or real(q, bank, k)
    )
    sh, sw = memory._resized_size((H, W))
    grid = (-(-sh // appearance_module.GRID_STRIDE), -(-sw // appearance_module.GRID_STRIDE))
    small_cells = appearance_module._cell_cover(small, grid) > 0
    large_cells = appearance_module._cell_cover(large, grid) > 0
    memory.probabilities(frame, [1, 2], small)
    again = memory.probabilities(frame, [1, 2], large)
    # the background and both objects, each pass: the second one only the large region's cells not matched yet
    assert matched == [int(small_cells.sum())] * 3 + [int((large_cells & ~small_cells).sum())] * 3
    torch.testing.assert_close(again, expected, atol=2e-3, rtol=0)
    memory.remember_segmentation(frame, torch.from_numpy(first_labels))
    memory.probabilities(frame, [1, 2], small)
    assert matched[-1] == int(small_cells.sum())  # after a memory update the frame is matched afresh
