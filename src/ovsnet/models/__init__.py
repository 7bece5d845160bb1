"""ovsnet.models: the OVS-Net network in plain PyTorch (Mask R-CNN + Re-ID head + Mask-Guided Attention)."""

from ovsnet.models.detector import BACKBONES, LoadReport, build_maskrcnn, load_detector_checkpoint
from ovsnet.models.mga import MGA_PRESETS, AdvancedASPP, MaskGuidedAttention
from ovsnet.models.ovsnet import Detections, FeatureContext, OVSNet, build_ovsnet, group_losses
from ovsnet.models.reid import ReIDHead, batch_hard_triplet_loss, select_reid_samples

__all__ = [
    "BACKBONES",
    "MGA_PRESETS",
    "AdvancedASPP",
    "Detections",
    "FeatureContext",
    "LoadReport",
    "MaskGuidedAttention",
    "OVSNet",
    "ReIDHead",
    "batch_hard_triplet_loss",
    "build_maskrcnn",
    "build_ovsnet",
    "group_losses",
    "load_detector_checkpoint",
    "select_reid_samples",
]
