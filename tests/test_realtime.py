"""The realtime preset (BN folding, test-time sizing) and the ONNX Runtime backend: parity with PyTorch on the
synthetic validation videos, the export CLI and its errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ovsnet.data.davis import load_davis
from ovsnet.data.io import DataError, read_label_map
from ovsnet.export import export_onnx
from ovsnet.export import main as export_main
from ovsnet.inference.flow import build_flow
from ovsnet.inference.onnx_backend import load_onnx_model, manifest_path, onnx_settings, part_path
from ovsnet.inference.protocol import SegmenterModel
from ovsnet.inference.runner import segment_dataset
from ovsnet.inference.runtime import (
    DEFAULT_PRESET_PROPOSALS,
    RuntimeSettings,
    fold_batchnorm,
    load_backend,
    prepare_runtime,
    preset_runtime,
    size_test_time,
)
from ovsnet.inference.segmenter import VideoSegmenter
from ovsnet.inference.settings import resolve
from ovsnet.metrics.davis import evaluate_sequences
from ovsnet.models.ovsnet import build_ovsnet
from tests.tiny_models import TINY_MODEL

pytest.importorskip("onnxruntime")

# MGA's grid not divisible by the pyramid bins (3, 6): the export's fixed-slice pools are compared too
PARITY_MODEL: dict[str, object] = {**TINY_MODEL, "mga_size": 28}


def _randomize_bn(model: nn.Module) -> None:
    """Non-trivial BN statistics and affines, so a wrong fold shows in the outputs."""
    gen = torch.Generator().manual_seed(1)
    for module in model.modules():
        if hasattr(module, "running_var") and module.running_var is not None:
            n = len(module.running_var)
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)


@pytest.mark.parametrize(("backbone", "norm"), [("resnet18", "bn"), ("efficientnet_lite0", "frozen_bn")])
def test_fold_batchnorm_keeps_the_backbone_output(backbone: str, norm: str, one_thread: None) -> None:
    torch.manual_seed(0)
    model = build_ovsnet(**{**TINY_MODEL, "backbone": backbone, "norm": norm}).eval()
    _randomize_bn(model)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        before = model.detector.backbone(x)
        folded = fold_batchnorm(model)
        after = model.detector.backbone(x)
    assert folded > 10
    remaining = [m for m in model.detector.backbone.modules() if "BatchNorm" in type(m).__name__]
    assert remaining == []
    for key, ref in before.items():
        torch.testing.assert_close(after[key], ref, rtol=1e-3, atol=1e-4 * float(ref.abs().max()))


def test_fold_batchnorm_refuses_a_training_model() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match="eval-mode"):
        fold_batchnorm(model)


def test_size_test_time_keeps_exactly_the_candidates_the_cascade_keeps(one_thread: None) -> None:
    """Raising the detector's score threshold to min_candidate_score drops only what the cascade drops."""
    torch.manual_seed(0)
    model = build_ovsnet(**{**TINY_MODEL, "box_detections_per_img": 30}).eval()
    image = torch.rand(3, 64, 96, generator=torch.Generator().manual_seed(2))
    full = model.detect([image])[0]
    min_score = float(full.scores.median())  # random heads score around 0.5: split them in half
    size_test_time(model, 100, 30, 30, min_score=min_score)
    kept = model.detect([image])[0]
    wanted = full.scores >= min_score
    assert 0 < len(kept) == int(wanted.sum()) < len(full)
    torch.testing.assert_close(kept.boxes, full.boxes[wanted])
    torch.testing.assert_close(kept.mask_probs, full.mask_probs[wanted])
    torch.testing.assert_close(kept.embeddings, full.embeddings[wanted])
    size_test_time(model, 100, 30, 2)
    assert len(model.detect([image])[0]) == 2
    with pytest.raises(ValueError, match="detections_per_img"):
        size_test_time(model, 100, 30, 0)


def test_realtime_settings_match_the_model_preset() -> None:
    """RuntimeSettings applies conf/model/realtime.yaml's test-time counts to any checkpoint: keep them equal."""
    from ovsnet.hydra_utils import compose_config

    model_config = compose_config("train.yaml", ["model=realtime"]).model.model_config
    inference = compose_config("evaluate.yaml", ["inference=realtime"]).inference
    settings = RuntimeSettings()
    assert model_config.backbone == "efficientnet_lite0"
    assert model_config.rpn_pre_nms_top_n_test == settings.rpn_pre_nms_top_n
    assert model_config.rpn_post_nms_top_n_test == settings.rpn_post_nms_top_n
    assert model_config.box_detections_per_img == settings.detections_per_img
    assert inference.name == "realtime" and inference.flow.preset == "medium"


def test_the_default_preset_keeps_the_models_counts() -> None:
    """``ovsnet-video --preset default`` folds BN, keeps 500 proposals and drops unusable candidates, but keeps
    the checkpoint's other counts (None); ``realtime`` sizes them all to a few objects."""
    model = build_ovsnet(**{**TINY_MODEL, "box_detections_per_img": 30}).eval()
    rpn, heads = model.detector.rpn, model.detector.roi_heads
    pre_nms = rpn._pre_nms_top_n["testing"]
    default = preset_runtime("default", threads=None)
    assert default.fold_bn and default.threads is None
    prepare_runtime(model, default, min_score=0.5)
    assert rpn._pre_nms_top_n["testing"] == pre_nms and heads.detections_per_img == 30
    assert rpn._post_nms_top_n["testing"] == DEFAULT_PRESET_PROPOSALS
    assert heads.score_thresh == pytest.approx(0.5)
    assert preset_runtime("realtime", threads=2) == RuntimeSettings(threads=2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    torch.manual_seed(0)
    model = build_ovsnet(**PARITY_MODEL).eval()
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(model, out, PARITY_MODEL, {"reid.rho": 1.5})
    return model, out


def _masks(root: Path) -> dict[str, np.ndarray]:
    return {f"{p.parent.name}/{p.name}": read_label_map(p) for p in sorted(root.glob("*/*.png"))}


def _object_ious(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[float]:
    assert a.keys() == b.keys() and a
    ious = []
    for key, labels in a.items():
        for obj in set(np.unique(labels)) | set(np.unique(b[key])) - {0}:
            x, y = labels == obj, b[key] == obj
            ious.append(float((x & y).sum() / max((x | y).sum(), 1)))
    return ious


def test_onnx_runtime_matches_pytorch_on_synthetic_videos(
    exported: tuple[nn.Module, Path], synthetic_root: Path, tmp_path: Path, one_thread: None
) -> None:
    model, onnx_path = exported
    ort_model = load_onnx_model(onnx_path, threads=1)
    assert isinstance(ort_model, SegmenterModel)
    assert onnx_settings(onnx_path) == {"reid.rho": 1.5}  # beside the model, not on it
    sequences = load_davis(synthetic_root, split="val")
    # every candidate reaches the cascade; the appearance memory on ImageNet features alone, as the ONNX
    # backend runs it (its backbone graph has the detector's fixed input size, not the trunk's windows)
    config = resolve(overrides={"cascade.min_candidate_score": 0.0, "appearance.network_share": 0.0})

    image = torch.from_numpy(sequences[0].frame(1)).permute(2, 0, 1).float() / 255.0
    a, b = model.detect([image])[0], ort_model.detect([image])[0]
    assert len(a) == len(b) > 0
    torch.testing.assert_close(b.boxes, a.boxes, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(b.mask_probs, a.mask_probs, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(b.embeddings, a.embeddings, atol=1e-4, rtol=1e-4)
    refined = ort_model.refine_box_masks(b.features, b.boxes[:2], b.mask_probs[:2])
    torch.testing.assert_close(
        refined, model.refine_box_masks(a.features, a.boxes[:2], a.mask_probs[:2]), atol=1e-4, rtol=1e-4
    )

    scores = {}
    for name, net in (("torch", model), ("onnx", ort_model)):
        results = tmp_path / name
        segment_dataset(
            lambda net=net: VideoSegmenter(net, build_flow("dis"), config), sequences, results, progress=False
        )
        scores[name] = evaluate_sequences(sequences, results, workers=1).scores["J&F-Mean"]
    ious = _object_ious(_masks(tmp_path / "torch"), _masks(tmp_path / "onnx"))
    assert float(np.mean(ious)) >= 0.99
    assert abs(scores["torch"] - scores["onnx"]) <= 0.005


def test_load_backend_prepares_either_backend(
    exported: tuple[nn.Module, Path], tmp_path: Path, one_thread: None
) -> None:
    """The Python face of --backend/--preset: both backends end up with the realtime counts."""
    settings = RuntimeSettings(threads=None, detections_per_img=3)
    ckpt = _checkpoint(tmp_path / "tiny.ckpt", PARITY_MODEL)
    image = torch.rand(3, 64, 96)
    for backend, path in (("torch", ckpt), ("onnx", exported[1])):
        model = load_backend(path, backend, settings, min_score=0.0)
        assert model.detector.roi_heads.detections_per_img == 3, backend
        assert 0 < len(model.detect([image])[0]) <= 3, backend
    with pytest.raises(ValueError, match="backend must be one of"):
        load_backend(ckpt, "tensorrt")


def _checkpoint(path: Path, config: dict[str, object]) -> Path:
    torch.manual_seed(0)
    model = build_ovsnet(**config)
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {"model_config": config},
        },
        path,
    )
    return path


def test_export_cli_writes_every_part(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export" / "net.onnx"
    assert (
        export_main(["--ckpt", str(_checkpoint(tmp_path / "tiny.ckpt", PARITY_MODEL)), "--out", str(out)])
        == 0
    )
    for part in ("backbone", "rpn_head", "box_head", "mask_head", "reid_head", "mga"):
        assert part_path(out, part).is_file(), part
    assert manifest_path(out).is_file() and str(out) in capsys.readouterr().out


def test_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        export_main(["--ckpt", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "m.onnx")])
    assert "--ckpt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export_main(
            ["--ckpt", str(_checkpoint(tmp_path / "t.ckpt", PARITY_MODEL)), "--out", str(tmp_path / "m.pt")]
        )
    assert "must end in .onnx" in capsys.readouterr().err


def test_export_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install onnx"):
        export_onnx(build_ovsnet(**PARITY_MODEL).eval(), tmp_path / "m.onnx", PARITY_MODEL)


def test_backend_errors_name_the_file(
    exported: tuple[nn.Module, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_onnx_model(tmp_path / "none.onnx")
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(exported[1].read_bytes())
    with pytest.raises(DataError, match=f"manifest {tmp_path / 'lonely.json'} is missing"):
        load_onnx_model(lonely)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install onnxruntime"):
        load_onnx_model(exported[1])


@pytest.mark.parametrize(("size", "bins"), [(28, 3), (28, 6), (100, 6), (24, 6)])
def test_static_adaptive_pool_equals_adaptive_avg_pool(size: int, bins: int) -> None:
    from ovsnet.export import _StaticAdaptivePool

    x = torch.rand(2, 3, size, size)
    torch.testing.assert_close(_StaticAdaptivePool(size, bins)(x), nn.AdaptiveAvgPool2d(bins)(x))


def test_an_old_manifest_with_flat_settings_still_reads(
    exported: tuple[nn.Module, Path], tmp_path: Path
) -> None:
    """Manifests written before the settings had sections store flat names (``rho_reid``): mapped on reading."""
    import json
    import shutil

    _, onnx_path = exported
    old = tmp_path / "model.onnx"
    shutil.copy(onnx_path, old)
    manifest = json.loads(manifest_path(onnx_path).read_text())
    manifest_path(old).write_text(
        json.dumps({**manifest, "inference_settings": {"rho_reid": 1.2, "use_mga": False}})
    )
    assert onnx_settings(old) == {"reid.rho": 1.2, "mga.enabled": False}
    manifest_path(old).write_text(json.dumps({**manifest, "inference_settings": {"rho_typo": 1.0}}))
    with pytest.raises(DataError, match="rho_typo"):
        onnx_settings(old)
