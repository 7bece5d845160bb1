"""ovsnet: one-pass, real-time, detection-based video object segmentation (OVS-Net)."""

__version__ = "0.1.0"
