"""Optical flow backends behind one interface, plus the backward warp that turns masks into templates.

Every estimator is called as ``flow(prev_rgb, rgb) -> HxWx2 float32``: for each pixel of ``rgb`` the
displacement (x, y) to its position in ``prev_rgb`` (backward flow). With backward flow, warping the
previous masks is a plain gather (``cv2.remap`` / ``grid_sample``) with no holes or collisions.
The built-in estimators also offer ``low_res(prev_rgb, rgb)``: the same flow at their working resolution,
so a caller that needs it smaller (the cascade's templates) or only sometimes at full size (flow-path
objects) resizes it once with ``resize_flow`` instead of paying for a full-resolution field every frame.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DISFlow",
    "FarnebackFlow",
    "FlowEstimator",
    "RAFTFlow",
    "ZeroFlow",
    "build_flow",
    "resize_flow",
    "warp",
]

logger = logging.getLogger(__name__)

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class FlowEstimator(Protocol):
    """``flow(prev_rgb, rgb)`` -> HxWx2 float32 backward flow (channel 0 = x, channel 1 = y)."""

    def __call__(self, prev_rgb: np.ndarray, rgb: np.ndarray) -> np.ndarray: ...


def _check_pair(prev_rgb: np.ndarray, rgb: np.ndarray) -> None:
    if prev_rgb.shape != rgb.shape or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(
            f"flow needs two HxWx3 frames of the same size, got {prev_rgb.shape} and {rgb.shape}"
        )


def _check_scale(scale: float) -> float:
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"flow scale must be in (0, 1], got {scale}")
    return float(scale)


def _working_scale(height: int, scale: float, max_height: int | None) -> float:
    """``scale``, lowered so the working image is at most ``max_height`` rows (None: no cap)."""
    if max_height is not None and height * scale > max_height:
        return max_height / height
    return scale


def _to_gray(rgb: np.ndarray, scale: float, max_height: int | None = None) -> np.ndarray:
    """Grayscale at the working scale: flow at reduced resolution is most of the speed-up."""
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    scale = _working_scale(gray.shape[0], scale, max_height)
    if scale < 1.0:
        h, w = gray.shape
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a flow field to HxW and multiply its vectors by the per-axis scale factor."""
    h, w = flow.shape[:2]
    if (h, w) == (height, width):
        return flow.astype(np.float32, copy=False)
    up = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    up[..., 0] *= width / w
    up[..., 1] *= height / h
    return up.astype(np.float32, copy=False)


class _GrayPairs:
    """Working-scale grayscale of both frames; a video's frame t is frame t+1's ``prev``: convert it once.

    The cache holds the last current frame itself and is hit only when the very same array comes back as
    ``prev_rgb`` (how ``VideoSegmenter`` calls it); an array changed in place between calls is not supported.
    """

    scale: float
    max_height: int | None = None
    _last: tuple[np.ndarray, np.ndarray] | None = None

    def _grays(self, prev_rgb: np.ndarray, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _check_pair(prev_rgb, rgb)
        if self._last is not None and self._last[0] is prev_rgb:
            prev = self._last[1]
        else:
            prev = _to_gray(prev_rgb, self.scale, self.max_height)
        cur = _to_gray(rgb, self.scale, self.max_height)
        self._last = (rgb, cur)
        return prev, cur


class DISFlow(_GrayPairs):
    """OpenCV Dense Inverse Search (the default backend).

    ``scale`` is the working scale and ``max_height`` caps the working image's rows (DAVIS 480p runs at
    240 rows with the default 240). Preset ``medium`` is several times slower than ``ultrafast`` but its
    propagation holds on photographs (docs/benchmarks.md, "Which optical flow holds the floor"). These
    defaults are the ``inference/flow=dis`` option's (``conf/inference/flow/dis.yaml`` names only the class).
    """

    def __init__(self, preset: str = "medium", scale: float = 1.0, max_height: int | None = 240) -> None:
        if preset not in _DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; choose one of {sorted(_DIS_PRESETS)}")
        if max_height is not None and max_height < 8:
            raise ValueError(f"flow max_height must be >= 8 or None, got {max_height}")
        self.preset = preset
        self.scale = _check_scale(scale)
        self.max_height = max_height
        self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])

    def low_res(self, prev_rgb: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        """Backward flow at the working scale, in working-scale pixels."""
        prev, cur = self._grays(prev_rgb, rgb)
        return self._dis.calc(cur, prev, None)  # cur(x) ~ prev(x + flow(x)): backward flow

    def __call__(self, prev_rgb: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        return resize_flow(self.low_res(prev_rgb, rgb), *rgb.shape[:2])


class FarnebackFlow(_GrayPairs):
    """OpenCV Farneback polynomial-expansion flow: slower than DIS, smoother on large textureless areas."""

    def __init__(
        self,
        scale: float = 0.5,
        pyr_scale: float = 0.5,
        levels: int = 3,
        winsize: int = 15,
        iterations: int = 3,
        poly_n: int = 5,
        poly_sigma: float = 1.2,
    ) -> None:
        self.scale = _check_scale(scale)
        self.params = dict(
            pyr_scale=pyr_scale,
            levels=levels,
            winsize=winsize,
            iterations=iterations,
            poly_n=poly_n,
            poly_sigma=poly_sigma,
            flags=0,
        )

    def low_res(self, prev_rgb: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        """Backward flow at the working scale, in working-scale pixels."""
        prev, cur = self._grays(prev_rgb, rgb)
        return cv2.calcOpticalFlowFarneback(cur, prev, None, **self.params)

    def __call__(self, prev_rgb: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        return resize_flow(self.low_res(prev_rgb, rgb), *rgb.shape[:2])


_RAFT_VARIANTS = ("raft_small", "raft_large")


def _raft_weights_enum(variant: str):
    from torchvision.models import optical_flow

    return (
        optical_flow.Raft_Small_Weights if variant == "raft_small" else optical_flow.Raft_Large_Weights
    ).DEFAULT


def _load_raft_state(variant: str, weights: str | Path) -> dict:
    """State dict from a local file, or from torch.hub's cache for ``"default"``; never downloads."""
    if str(weights) == "default":
        url = _raft_weights_enum(variant).url
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        if not path.is_file():
            raise FileNotFoundError(
                f"{variant} weights are not in the torch hub cache ({path}); place {url} there or pass "
                "weights=<local .pth file> (weights=None gives random weights, for tests only)"
            )
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"{variant} weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


class ZeroFlow:
    """No motion: templates are the previous masks unwarped (the no-flow ablation, ``inference/flow=none``)."""

    def __call__(self, prev_rgb: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        _check_pair(prev_rgb, rgb)
        return np.zeros((*np.asarray(rgb).shape[:2], 2), dtype=np.float32)


class RAFTFlow:
    """torchvision RAFT (small or large); runs on the GPU when one is available."""

    def __init__(
        self,
        variant: str = "raft_small",
        weights: str | Path | None = "default",
        device: str | torch.device | None = None,
        iters: int = 12,
        scale: float = 1.0,
    ) -> None:
        from torchvision.models import optical_flow

        if variant not in _RAFT_VARIANTS:
            raise ValueError(f"unknown RAFT variant {variant!r}; choose one of {_RAFT_VARIANTS}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.iters = iters
        self.scale = _check_scale(scale)
        model = getattr(optical_flow, variant)(weights=None)
        if weights is not None:
            model.load_state_dict(_load_raft_state(variant, weights))
        else:
            logger.warning("RAFT %s with random weights: flow values are meaningless", variant)
        self.model = model.eval().to(self.device)

    def _prepare(self, rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """uint8 HxWx3 -> 1x3xhxw in [-1, 1], h and w multiples of 8 as RAFT requires."""
        image = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(2, 0, 1)[None].float()
        image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        return image / 127.5 - 1.0

    @torch.inference_mode()
    def low_res(self, prev_rgb: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        """Backward flow at RAFT's working size (multiples of 8), in working-size pixels."""
        _check_pair(prev_rgb, rgb)
        h, w = rgb.shape[:2]
        # RAFT's correlation pyramid needs at least 128 px per side (feature maps of 16 at stride 8).
        size = (max(128, round(h * self.scale / 8) * 8), max(128, round(w * self.scale / 8) * 8))
        # RAFT(a, b) gives a(x) ~ b(x + flow): (cur, prev) is the backward flow we need.
        flows = self.model(
            self._prepare(rgb, size), self._prepare(prev_rgb, size), num_flow_updates=self.iters
        )
        return np.ascontiguousarray(flows[-1][0].permute(1, 2, 0).float().cpu().numpy())

    def __call__(self, prev_rgb: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        return resize_flow(self.low_res(prev_rgb, rgb), *rgb.shape[:2])


def build_flow(backend: str = "dis", **kwargs) -> FlowEstimator:
    """Build a flow estimator by name (``dis``, ``farneback``, ``raft``, ``none``); kwargs go to its constructor."""
    backends = {"dis": DISFlow, "farneback": FarnebackFlow, "raft": RAFTFlow, "none": ZeroFlow}
    if backend not in backends:
        raise ValueError(f"unknown flow backend {backend!r}; choose one of {sorted(backends)}")
    return backends[backend](**kwargs)


def _warp_numpy(probs: np.ndarray, flow: np.ndarray) -> np.ndarray:
    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    out = np.empty(probs.shape, dtype=np.float32)
    for k in range(probs.shape[0]):
        out[k] = cv2.remap(
            probs[k].astype(np.float32, copy=False),
            map_x,
            map_y,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
    return out


def _warp_torch(probs: torch.Tensor, flow: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``grid_sample`` at the flow's sampling positions (kornia's ``remap`` gives the same values, but took
    1.5x the time at 480p and a 1 s import, so kornia is not a dependency)."""
    h, w = probs.shape[-2:]
    flow_t = torch.as_tensor(flow, device=probs.device, dtype=torch.float32)
    ys, xs = torch.meshgrid(
        torch.arange(h, device=probs.device, dtype=torch.float32),
        torch.arange(w, device=probs.device, dtype=torch.float32),
        indexing="ij",
    )
    # grid_sample wants sampling positions normalised to [-1, 1] (align_corners=True: -1 = pixel 0 centre).
    gx = (xs + flow_t[..., 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow_t[..., 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)[None]
    warped = F.grid_sample(
        probs[None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return warped[0].to(probs.dtype)


def warp(prev_probs: np.ndarray | torch.Tensor, flow: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Backward-warp (K,H,W) probabilities of the previous frame onto the current one; outside pixels are 0."""
    if prev_probs.ndim != 3 or tuple(prev_probs.shape[-2:]) != tuple(flow.shape[:2]):
        raise ValueError(
            f"warp needs (K,H,W) probabilities matching the HxWx2 flow, got "
            f"{tuple(prev_probs.shape)} and {tuple(flow.shape)}"
        )
    if isinstance(prev_probs, torch.Tensor):
        return _warp_torch(prev_probs, flow)
    flow_np = flow.detach().cpu().numpy() if isinstance(flow, torch.Tensor) else flow
    return _warp_numpy(np.asarray(prev_probs), np.asarray(flow_np, dtype=np.float32))
