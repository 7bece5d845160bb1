"""``python -m ovsnet.export --ckpt last.ckpt --out model.onnx``: the network parts the segmenter calls, as ONNX.

Exported (static-shaped, tensors in / tensors out): backbone + FPN (``model.onnx``, any frame size), the RPN
head, the box head with its predictor, the mask head with its predictor, the Re-ID head and MGA's
convolutional head (``model.<part>.onnx``, any number of boxes). NMS, anchors, RoIAlign and pasting are
data-dependent glue that stays in PyTorch around the sessions (:mod:`ovsnet.inference.onnx_backend`).
``model.json`` records the build kwargs of that glue and each graph's inputs and outputs.

BN is folded into the convolutions first. The TorchScript exporter is the default: it exports these parts
in about a second, the ``torch.export`` one (``--exporter dynamo``, needs onnxscript) in minutes.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ovsnet.data.io import DataError
from ovsnet.inference.onnx_backend import MANIFEST_VERSION, manifest_path, part_path
from ovsnet.inference.runtime import fold_batchnorm
from ovsnet.inference.settings import checkpoint_settings, dotted, nested
from ovsnet.models.mga import MaskGuidedAttention
from ovsnet.utils import write_json_atomic

__all__ = ["EXPORTERS", "export_onnx", "main"]

log = logging.getLogger(__name__)

EXPORTERS = ("torchscript", "dynamo")
OPSET = 18


class _Backbone(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.backbone(image).values())


class _RPNHead(nn.Module):
    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, *features: Tensor) -> tuple[Tensor, ...]:
        logits, deltas = self.head(list(features))
        return (*logits, *deltas)


class _Chain(nn.Module):
    """A head and its predictor as one graph (box: (class logits, box deltas); mask: per-class logits)."""

    def __init__(self, head: nn.Module, predictor: nn.Module) -> None:
        super().__init__()
        self.head, self.predictor = head, predictor

    def forward(self, x: Tensor) -> Any:
        return self.predictor(self.head(x))


class _MGAHead(nn.Module):
    """``MaskGuidedAttention.forward`` after its RoIAlign crop (the crop stays in PyTorch). Mirrors that
    method line for line; tests/test_realtime.py checks both paths agree."""

    def __init__(self, mga: MaskGuidedAttention) -> None:
        super().__init__()
        self.mga = mga
        _fixed_pools(mga, mga.out_size)

    def forward(self, crops: Tensor, attention: Tensor) -> Tensor:
        mga = self.mga
        x = mga.fuse(crops)
        att = attention.to(x.dtype)
        if att.shape[-2:] != x.shape[-2:]:
            att = F.interpolate(att, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = F.interpolate(x * att, size=(mga.out_size, mga.out_size), mode="bilinear", align_corners=False)
        return mga.classifier(mga.aspp(mga.stage(x)))


class _StaticAdaptivePool(nn.Module):
    """``AdaptiveAvgPool2d(bins)`` over a known ``size`` x ``size`` map, as fixed slices (the same bins:
    rows ``floor(i*size/bins)`` to ``ceil((i+1)*size/bins)``): exportable when ``bins`` does not divide ``size``."""

    def __init__(self, size: int, bins: int) -> None:
        super().__init__()
        self.edges = [(i * size // bins, -(-(i + 1) * size // bins)) for i in range(bins)]

    def forward(self, x: Tensor) -> Tensor:
        rows = [
            torch.cat([x[:, :, r0:r1, c0:c1].mean((2, 3), keepdim=True) for c0, c1 in self.edges], dim=3)
            for r0, r1 in self.edges
        ]
        return torch.cat(rows, dim=2)


def _fixed_pools(module: nn.Module, size: int) -> None:
    """Adaptive average pools over a known ``size`` x ``size`` map as fixed pools (the same averages): the
    exporter cannot size an adaptive pool once the batch dimension is dynamic."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d):
                bins = child.output_size if isinstance(child.output_size, int) else child.output_size[0]
                if bins is None:
                    raise DataError(f"MGA's pyramid pooling {child} has no fixed bin count to export")
                bins = int(bins)
                fixed = nn.AvgPool2d(size // bins) if size % bins == 0 else _StaticAdaptivePool(size, bins)
                setattr(parent, name, fixed)


def _export(
    module: nn.Module,
    args: tuple[Tensor, ...],
    file: Path,
    inputs: Sequence[str],
    outputs: Sequence[str],
    dynamic: Mapping[str, Mapping[int, str]],
    exporter: str,
) -> None:
    module.eval()  # the TorchScript exporter restores the mode it found: keep it eval
    file.parent.mkdir(parents=True, exist_ok=True)
    common = {"input_names": list(inputs), "output_names": list(outputs), "opset_version": OPSET}
    if exporter == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its deprecation notice and tracer warnings on shape arithmetic
            torch.onnx.export(
                module,
                args,
                str(file),
                dynamic_axes={k: dict(v) for k, v in dynamic.items()},
                dynamo=False,
                **common,
            )
        return
    shapes = {
        name: {axis: torch.export.Dim(f"{name}_{axis}", min=1) for axis in axes}
        for name, axes in dynamic.items()
        if name in inputs
    }
    torch.onnx.export(
        module, args, str(file), dynamic_shapes=[shapes.get(name) for name in inputs], dynamo=True, **common
    )


def _require_exporter(exporter: str) -> None:
    """One line saying what to install, before any work: the TorchScript exporter writes through ``onnx``, the
    ``torch.export`` one also needs ``onnxscript``."""
    missing = []
    for name in ["onnx"] + (["onnxscript"] if exporter == "dynamo" else []):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(
            f"ONNX export ({exporter}) needs {', '.join(missing)}: pip install {' '.join(missing)}"
        )


def _batch_axes(names: Sequence[str]) -> dict[str, dict[int, str]]:
    return {name: {0: "n"} for name in names}


def export_onnx(
    model: nn.Module,
    out: str | os.PathLike,
    model_config: Mapping[str, Any],
    inference_settings: Mapping[str, Any] | None = None,
    exporter: str = "torchscript",
) -> Path:
    """Export ``model`` (an OVSNet, left unchanged) to ``out`` (``model.onnx`` + parts + ``model.json``).

    ``model_config``: the build kwargs it was made with (the ONNX backend rebuilds the glue from them);
    ``inference_settings``: the settings calibrated for it (dotted or nested keys; the manifest stores them
    nested and :func:`~ovsnet.inference.onnx_backend.onnx_settings` reads them back).
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    out = Path(out)
    if out.suffix != ".onnx":
        raise DataError(f"--out {out}: the exported model's name must end in .onnx")
    _require_exporter(exporter)
    net = copy.deepcopy(model).eval()
    fold_batchnorm(net)
    det = net.detector
    size = 64
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = det.backbone(image)
    names = list(features)
    levels = [f"level_{n}" for n in names]
    spatial = {name: {2: f"{name}_h", 3: f"{name}_w"} for name in ["image", *levels]}
    _export(
        _Backbone(det.backbone), (image,), part_path(out, "backbone"), ["image"], levels, spatial, exporter
    )
    parts: dict[str, dict[str, Any]] = {"backbone": {"inputs": ["image"], "outputs": levels}}
    rpn_out = [f"objectness_{n}" for n in names] + [f"deltas_{n}" for n in names]
    rpn_axes = {**{k: spatial[k] for k in levels}, **{o: {2: f"{o}_h", 3: f"{o}_w"} for o in rpn_out}}
    feats = tuple(features.values())
    _export(_RPNHead(det.rpn.head), feats, part_path(out, "rpn_head"), levels, rpn_out, rpn_axes, exporter)
    parts["rpn_head"] = {"inputs": levels, "outputs": rpn_out}
    channels = det.backbone.out_channels
    heads = det.roi_heads
    box_res = int(heads.box_roi_pool.output_size[0])
    mask_res = int(heads.mask_roi_pool.output_size[0])
    roi_parts: list[tuple[str, nn.Module, int, list[str]]] = [
        ("box_head", _Chain(heads.box_head, heads.box_predictor), box_res, ["class_logits", "box_deltas"]),
        ("mask_head", _Chain(heads.mask_head, heads.mask_predictor), mask_res, ["mask_logits"]),
    ]
    if net.reid_head is not None:
        roi_parts.append(("reid_head", net.reid_head, net.reid_head.resolution, ["embeddings"]))
    for name, module, res, outputs in roi_parts:
        x = torch.rand(2, channels, res, res)
        parts[name] = _roi_part(module, (x,), out, name, ["rois"], outputs, exporter)
    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION,
        "model_config": dict(model_config),
        "inference_settings": nested(dotted(inference_settings, "export_onnx", map_flat=True)),
        "feature_names": names,
        "fpn_channels": channels,
        "parts": parts,
    }
    if net.mga is not None:
        mga = net.mga
        crops = torch.rand(2, channels * mga.num_levels, mga.crop_size, mga.crop_size)
        attention = torch.rand(2, 1, mga.crop_size, mga.crop_size)
        parts["mga"] = _roi_part(
            _MGAHead(mga), (crops, attention), out, "mga", ["crops", "attention"], ["logits"], exporter
        )
        manifest["mga"] = {
            k: getattr(mga, k) for k in ("num_levels", "crop_size", "out_size", "enlarge", "pad_value")
        }
    write_json_atomic(manifest_path(out), manifest)
    log.info("exported %s to %s (+ %s)", ", ".join(parts), out, manifest_path(out).name)
    return out


def _roi_part(
    module: nn.Module,
    args: tuple[Tensor, ...],
    out: Path,
    name: str,
    inputs: list[str],
    outputs: list[str],
    exporter: str,
) -> dict[str, Any]:
    """Export a batch-of-boxes part; record each output's per-box shape (empty batches skip the session)."""
    module.eval()
    with torch.no_grad():
        result = module(*args)
    result = result if isinstance(result, tuple) else (result,)
    try:
        _export(module, args, part_path(out, name), inputs, outputs, _batch_axes(inputs + outputs), exporter)
    except Exception as exc:  # the exporters raise many types; name the part that failed
        raise RuntimeError(f"ONNX export of the {name} part failed: {exc}") from exc
    return {"inputs": inputs, "outputs": outputs, "item_shapes": [list(r.shape[1:]) for r in result]}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ovsnet.export",
        description="Export an OVS-Net checkpoint's network parts to ONNX for the ONNX Runtime backend "
        "(ovsnet-video --backend onnx --onnx model.onnx, ovsnet.inference.onnx_backend.load_onnx_model).",
    )
    parser.add_argument("--ckpt", required=True, type=Path, help="OVSNetModule checkpoint (.ckpt)")
    parser.add_argument(
        "--out", required=True, type=Path, help="output model (.onnx; parts and .json beside it)"
    )
    parser.add_argument("--exporter", choices=EXPORTERS, default="torchscript")
    parser.add_argument("--trust-checkpoint", action="store_true", help="load the checkpoint in full")
    return parser


def export_checkpoint(
    ckpt: str | os.PathLike, out: str | os.PathLike, exporter: str = "torchscript", trust: bool = False
) -> Path:
    """Load a checkpoint and export it (the CLI's work; the video CLI's ``--backend onnx`` calls it too)."""
    from ovsnet.models.checkpoint import read_hyperparameters
    from ovsnet.models.loading import load_model

    model = load_model(ckpt, trust=trust, trust_flag="--trust-checkpoint")
    config = read_hyperparameters(Path(ckpt), trust=trust).get("model_config")
    return export_onnx(model, out, config, checkpoint_settings(ckpt, trust=trust), exporter)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: one line naming the file on a bad checkpoint or output path."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if not args.ckpt.is_file():
        parser.error(f"--ckpt {args.ckpt}: no such file")
    if args.out.suffix != ".onnx":
        parser.error(f"--out {args.out}: the name must end in .onnx")
    try:
        out = export_checkpoint(args.ckpt, args.out, args.exporter, args.trust_checkpoint)
    except DataError as exc:
        parser.error(f"--ckpt {args.ckpt}: {exc}")
    except ImportError as exc:
        parser.exit(1, f"ovsnet.export: error: {exc}\n")
    print(f"wrote {out} and {manifest_path(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
