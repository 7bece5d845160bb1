"""Procedural DAVIS-layout videos: ovsnet's embedded default dataset.

Real DAVIS cannot be downloaded everywhere (CI, air-gapped machines), yet the demo, the tests, the benchmarks
and the ablations all need videos with the hard cases of semi-supervised VOS. This generator makes them:

* 1-4 target objects with non-convex star/blob outlines (a dominant lobe harmonic plus smooth radial noise)
  that move smoothly, change scale, rotate, stretch and deform non-rigidly;
* each object a saturated colour with its own pattern (stripes, checker, dots, rings, waves) and a thin darker
  outline, on a desaturated, lower-contrast textured background that pans and zooms (camera motion);
* occlusions (a fixed depth order, occluded pixels belong to the front object), objects that leave the frame
  and re-enter many frames later, and unannotated distractors that look like a target (same shape family and
  colour tone, smaller, label 0).

``style="photo"`` swaps the look for real photographs (:mod:`ovsnet.data.photo_videos`: photo backgrounds
and object textures, articulated / holed / thin shapes, camera pan and zoom, lighting drift, motion blur)
while keeping this package's motion planning, occlusions, re-entries, distractors and output layout; its
validation videos use photos the training videos never see.

Every video is planned from ``(seed, index)`` alone, so the same settings give byte-identical PNGs and JPEGs.
:func:`make_video` plans a video whose :meth:`SyntheticVideo.render` draws any frame on demand (constant
memory for the long-video benchmark); :func:`generate_dataset` writes the DAVIS 2017 layout plus
``meta/<seq>.json`` (per-frame visibility, in-frame flags, occlusion and re-entry events).

One job per module: ``textures`` and ``toy`` (the toy look), ``meta`` (the per-video record), ``writer`` (the
dataset on disk, either look) and ``cli``. The engine both looks share (settings and argument checks, motion,
the star outline, rendering) is :mod:`ovsnet.data.procedural`.

    python -m ovsnet.data.synthetic --out data/synthetic --sequences 8 --frames 16 --size 128x160
    ovsnet-synthetic --out data/synthetic_photo --style photo --sequences 10 --frames 40 --size 240x427
"""

from ovsnet.data.procedural.config import (
    DISTRACTOR_BASE,
    PATTERNS,
    STYLES,
    SyntheticConfig,
    sequence_name,
)
from ovsnet.data.procedural.render import SyntheticFrame, SyntheticVideo
from ovsnet.data.synthetic.cli import main
from ovsnet.data.synthetic.meta import build_meta
from ovsnet.data.synthetic.writer import dataset_style, generate_dataset, make_video

__all__ = [
    "DISTRACTOR_BASE",
    "PATTERNS",
    "STYLES",
    "SyntheticConfig",
    "SyntheticFrame",
    "SyntheticVideo",
    "build_meta",
    "dataset_style",
    "generate_dataset",
    "main",
    "make_video",
    "sequence_name",
]
