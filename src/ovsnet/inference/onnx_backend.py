"""OVS-Net on ONNX Runtime behind the segmenter's :class:`~ovsnet.inference.protocol.SegmenterModel`.

``python -m ovsnet.export`` writes the network's static-shaped parts (backbone + FPN, RPN head, box head,
mask head, Re-ID head, MGA's convolutional head) as ONNX graphs, plus a JSON manifest. Here each graph runs
in an ONNX Runtime session standing in for the PyTorch module it came from, inside an :class:`OVSNet` built
from the manifest's ``model_config``: the data-dependent glue (anchors, NMS, RoIAlign, box decoding, mask
pasting) stays torchvision's, so both backends share every line but the convolutions.

Files: ``model.onnx`` (backbone + FPN), ``model.<part>.onnx`` for the other parts, ``model.json`` (the manifest).
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ovsnet.data.io import DataError
from ovsnet.inference.settings import dotted
from ovsnet.models.mga import MaskGuidedAttention

__all__ = [
    "MANIFEST_VERSION",
    "PARTS",
    "OrtPart",
    "import_onnxruntime",
    "load_onnx_model",
    "manifest_path",
    "onnx_settings",
    "part_path",
]

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
PARTS: tuple[str, ...] = ("backbone", "rpn_head", "box_head", "mask_head", "reid_head", "mga")
INSTALL_HINT = "pip install onnxruntime"


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or an ImportError saying in one line how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            f"the ONNX Runtime backend needs the onnxruntime package, which is not installed: {INSTALL_HINT}"
        ) from exc
    return onnxruntime


def manifest_path(onnx_path: str | os.PathLike) -> Path:
    """``model.onnx`` -> ``model.json``: what was exported and how to rebuild the glue around it."""
    return Path(onnx_path).with_suffix(".json")


def part_path(onnx_path: str | os.PathLike, part: str) -> Path:
    """The backbone is ``model.onnx`` itself; every other part is ``model.<part>.onnx`` beside it."""
    path = Path(onnx_path)
    return path if part == "backbone" else path.with_name(f"{path.stem}.{part}.onnx")


def _session_options(ort: Any, threads: int | None, spinning: bool) -> Any:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = threads
    # spinning workers answer faster on an idle machine and steal the cores of a busy one
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options


class OrtPart(nn.Module):
    """One exported graph: tensors in, tensors out (CPU float32). An empty batch never reaches ONNX Runtime:
    its outputs are empty tensors of the recorded per-item shapes."""

    def __init__(self, session: Any, spec: Mapping[str, Any]) -> None:
        super().__init__()
        self.session = session
        self.inputs: list[str] = list(spec["inputs"])
        self.outputs: list[str] = list(spec["outputs"])
        self.item_shapes: list[list[int]] | None = spec.get("item_shapes")

    def run(self, *tensors: Tensor) -> list[Tensor]:
        if self.item_shapes is not None and tensors[0].shape[0] == 0:
            return [tensors[0].new_zeros((0, *shape)) for shape in self.item_shapes]
        feed = {
            name: np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())
            for name, t in zip(self.inputs, tensors, strict=True)
        }
        return [torch.from_numpy(out) for out in self.session.run(self.outputs, feed)]


class OrtBackbone(nn.Module):
    """Stands in for ``detector.backbone``: padded image batch -> OrderedDict of FPN levels."""

    def __init__(self, part: OrtPart, names: Sequence[str], out_channels: int) -> None:
        super().__init__()
        self.part, self.names, self.out_channels = part, list(names), out_channels

    def forward(self, images: Tensor) -> OrderedDict[str, Tensor]:
        levels = [self.part.run(image[None])[: len(self.names)] for image in images]  # the graph has batch 1
        return OrderedDict((name, torch.cat([lv[i] for lv in levels])) for i, name in enumerate(self.names))


class OrtRPNHead(nn.Module):
    """Stands in for ``rpn.head``: FPN levels -> (objectness per level, box deltas per level)."""

    def __init__(self, part: OrtPart) -> None:
        super().__init__()
        self.part = part

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        per_image = [self.part.run(*(f[i : i + 1] for f in features)) for i in range(len(features[0]))]
        n = len(features)
        logits = [torch.cat([out[k] for out in per_image]) for k in range(n)]
        deltas = [torch.cat([out[n + k] for out in per_image]) for k in range(n)]
        return logits, deltas


class OrtHead(nn.Module):
    """A RoI head (box, mask, Re-ID): pooled features (N, C, R, R) -> its outputs (one tensor or a tuple)."""

    def __init__(self, part: OrtPart, **attributes: Any) -> None:
        super().__init__()
        self.part = part
        for key, value in attributes.items():  # what callers read from the module it replaces
            setattr(self, key, value)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        outputs = self.part.run(x)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


class PassThrough(nn.Module):
    """Stands in for ``box_predictor``: the box head's graph already returns (class logits, box deltas)."""

    def forward(self, x: Any) -> Any:
        return x


class OrtMGA(nn.Module):
    """Stands in for :class:`MaskGuidedAttention`: the RoIAlign crop in PyTorch, the conv head on ONNX Runtime."""

    crop_features = MaskGuidedAttention.crop_features

    def __init__(self, part: OrtPart, attributes: Mapping[str, Any]) -> None:
        super().__init__()
        self.part = part
        self.num_levels = int(attributes["num_levels"])
        self.crop_size = int(attributes["crop_size"])
        self.out_size = int(attributes["out_size"])
        self.enlarge = float(attributes["enlarge"])
        self.pad_value = float(attributes["pad_value"])

    def forward(
        self, features: Sequence[Tensor], rois: Tensor, image_shape: tuple[int, int], attention: Tensor
    ) -> Tensor:
        crops = self.crop_features(features, rois, image_shape)
        return self.part.run(crops, attention.float())[0]


def _read_manifest(path: Path) -> dict[str, Any]:
    file = manifest_path(path)
    if not path.is_file():
        raise DataError(f"ONNX model {path}: no such file (export one with python -m ovsnet.export)")
    if not file.is_file():
        raise DataError(
            f"ONNX model {path}: its manifest {file} is missing (re-export with python -m ovsnet.export)"
        )
    try:
        manifest = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"ONNX manifest {file} is unreadable: {exc}") from exc
    if manifest.get("version") != MANIFEST_VERSION:
        raise DataError(
            f"ONNX manifest {file} has version {manifest.get('version')!r}, this ovsnet reads {MANIFEST_VERSION}"
        )
    return manifest


def onnx_settings(path: str | os.PathLike) -> dict[str, Any]:
    """The inference settings an exported model's manifest carries (calibrated for its checkpoint), as dotted
    keys (flat names of older manifests mapped; see :func:`ovsnet.inference.settings.dotted`)."""
    path = Path(path)
    stored = _read_manifest(path).get("inference_settings")
    return dotted(stored, f"ONNX manifest {manifest_path(path)}", map_flat=True)


def load_onnx_model(path: str | os.PathLike, threads: int | None = None, spinning: bool = False) -> nn.Module:
    """An OVSNet whose network parts run on ONNX Runtime (a ``SegmenterModel``), from ``python -m ovsnet.export``.

    ``threads``: ONNX Runtime intra-op threads per session (None: its default, all cores). ``spinning``: idle
    workers busy-wait for the next run. Off by default: between two sessions PyTorch's RoI glue, OpenCV's flow
    and the cascade run on the same cores, and spinning workers took them (2 threads, 240x427: 5.6 fps with
    spinning, 14.7 without).
    """
    from ovsnet.models.ovsnet import build_ovsnet

    ort = import_onnxruntime()
    path = Path(path)
    manifest = _read_manifest(path)
    options = _session_options(ort, threads, spinning)
    specs = manifest["parts"]
    parts: dict[str, OrtPart] = {}
    for name, spec in specs.items():
        file = part_path(path, name)
        if not file.is_file():
            raise DataError(f"ONNX model {path}: part {name!r} is missing ({file})")
        session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        parts[name] = OrtPart(session, spec)
    config = {**manifest["model_config"], "weights": None, "checkpoint": None}
    model = build_ovsnet(**config).eval()  # the glue and its settings; every weighted module is replaced
    detector = model.detector
    detector.backbone = OrtBackbone(parts["backbone"], manifest["feature_names"], manifest["fpn_channels"])
    detector.rpn.head = OrtRPNHead(parts["rpn_head"])
    detector.roi_heads.box_head = OrtHead(parts["box_head"])
    detector.roi_heads.box_predictor = PassThrough()
    detector.roi_heads.mask_head = OrtHead(parts["mask_head"])
    detector.roi_heads.mask_predictor = PassThrough()
    if model.reid_head is not None:
        if "reid_head" not in parts:
            raise DataError(f"ONNX model {path}: model_config has a Re-ID head but no reid_head part")
        model.reid_head = OrtHead(
            parts["reid_head"], resolution=model.reid_head.resolution, embed_dim=model.reid_head.embed_dim
        )
    if model.mga is not None:
        if "mga" not in parts:
            raise DataError(f"ONNX model {path}: model_config has MGA but no mga part")
        model.mga = OrtMGA(parts["mga"], manifest["mga"])
    model.onnx_path = str(path)
    log.info("ONNX Runtime model from %s (%s)", path, ", ".join(parts))
    return model.eval()
