"""Colour and blending of a dreamed frame: the recipe's HSV illumination change, and pasting objects back
with a feathered or Poisson-blended band (labels stay hard: only the image is blended)."""

from __future__ import annotations

import logging

import cv2
import numpy as np

log = logging.getLogger(__name__)


def illumination(image: np.ndarray, params: np.ndarray) -> np.ndarray:
    """``x' = a·x^b + c`` on HSV saturation and value (params rows: S, V), hue untouched, clipped."""
    x = np.arange(256, dtype=np.float64) / 255.0
    lut = np.empty((256, 1, 3), np.uint8)
    lut[:, 0, 0] = np.arange(256)
    for channel, (a, b, c) in ((1, params[0]), (2, params[1])):
        lut[:, 0, channel] = np.rint(np.clip(a * x**b + c, 0.0, 1.0) * 255.0).astype(np.uint8)
    hsv = cv2.LUT(cv2.cvtColor(image, cv2.COLOR_RGB2HSV), lut)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def feather_alpha(mask: np.ndarray, width: int) -> np.ndarray:
    """Alpha ramping from ~0.5 at the mask edge to 1 ``width`` px inside; 0 outside (labels stay hard)."""
    alpha = cv2.blur(mask.astype(np.float32), (2 * width + 1, 2 * width + 1), borderType=cv2.BORDER_REFLECT)
    alpha[~mask] = 0.0
    alpha[alpha > 0.999] = 1.0
    return alpha


def seamless(under: np.ndarray, over: np.ndarray, mask: np.ndarray, width: int) -> np.ndarray:
    """Poisson blending of ``over`` into ``under`` inside ``mask``; feathering where Poisson cannot run."""
    if mask.sum() < 16 or min(mask.shape) < 3:
        return blend_alpha(under, over, feather_alpha(mask, width))
    pad = 3
    src = cv2.copyMakeBorder(over, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    dst = cv2.copyMakeBorder(under, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    m = cv2.copyMakeBorder(mask.astype(np.uint8) * 255, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    x, y, w, h = cv2.boundingRect(m)
    try:
        out = cv2.seamlessClone(src, dst, m, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    except cv2.error as exc:  # degenerate shapes: keep the cheap blend
        log.debug("seamlessClone failed (%s); feathering instead", exc)
        return blend_alpha(under, over, feather_alpha(mask, width))
    out = out[pad:-pad, pad:-pad]
    return np.where(mask[..., None], out, under)


def blend_alpha(under: np.ndarray, over: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return np.rint(over.astype(np.float32) * a + under.astype(np.float32) * (1.0 - a)).astype(np.uint8)
