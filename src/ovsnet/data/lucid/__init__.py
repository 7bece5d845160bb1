"""Lucid Data Dreaming: new training frames from one annotated frame (Khoreva et al., "Lucid Data Dreaming
for Video Object Segmentation"), for per-dataset fine-tuning on the first frames of the target videos.

Every number is a :class:`LucidConfig` field; the defaults are the recipe's
(``shared/notes/lucid-data-dreaming.md``). Label maps are only ever resampled with nearest interpolation, so
every output label is an input label, 0 or 255 (void). All randomness comes from the ``rng`` argument.

One job per module: ``config`` (the recipe's numbers), ``geometry`` (matrices and the thin-plate spline),
``compositing`` (illumination and blending), ``scene`` (layers and rendering a drawn scene) and ``dreamer``
(drawing scenes, the inpainting cache).
"""

from ovsnet.data.lucid.config import LucidConfig
from ovsnet.data.lucid.dreamer import LucidDreamer

__all__ = ["LucidConfig", "LucidDreamer"]
