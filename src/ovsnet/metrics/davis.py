"""DAVIS 2017 semi-supervised evaluation: region similarity J, boundary F-measure and their statistics.

Every figure equals the official DAVIS 2017 evaluation tool (``davis2017-evaluation``, semi-supervised task);
the same integer counts go through the same floating-point operations, so the numbers agree bit for bit.
What differs is only how the counts are obtained:

* J of every object of a frame is counted on one crop holding all labelled pixels, instead of on the full
  image per object;
* the boundary maps and the tolerance dilation of F run on each object's bounding box only (the union of its
  ground-truth and result masks, one pixel wider; ground truth and result as two channels of one array),
  which yields the same counts as full-image maps because every boundary pixel lies inside that box;
* sequences are spread over one process per core (this one included), OpenCV single-threaded in each.

Conventions reproduced from the official tool (they decide the numbers, so they are kept even where odd):

* the number of objects of a sequence is the largest label of its first ground-truth frame (void excluded);
  a label the first frame lacks is an object that is empty throughout; larger labels in later ground-truth
  frames count as background;
* the first and the last annotated frames are not evaluated (and their result masks are not read);
* void pixels (255) of the ground truth count as background and are *not* excluded (the official tool
  passes no void mask for the semi-supervised task); :func:`db_eval_iou` and :func:`db_eval_boundary` still
  accept an explicit ``void_pixels`` mask with the official semantics;
* an object missing from a result is an empty mask; a result label above the object count is an error;
* J = |A∩B| / |A∪B|, and 1 when the union is empty. F uses one-pixel boundaries (``seg2bmap``) matched within
  a disk of radius ``ceil(0.008 · image diagonal)``; an empty result boundary against a non-empty ground-truth
  boundary scores precision 1, recall 0 (and vice versa), two empty boundaries score 1;
* per object: mean, recall (fraction of frames > 0.5) and decay (mean of the first minus the last of 4
  frame bins, whose bin edges are cast to ``uint8`` as upstream does: they wrap beyond 255 frames);
* global: each statistic averaged over all objects of all sequences; J&F-Mean = (J-Mean + F-Mean) / 2.

Modules by job: :mod:`~ovsnet.metrics.measures` (J, F, statistics of masks),
:mod:`~ovsnet.metrics.sequences` (one sequence), :mod:`~ovsnet.metrics.tables` (result tables, CSV and
JSON), :mod:`~ovsnet.metrics.parallel` (the process pool, folders); this module gathers their public names.
``python -m ovsnet.metrics`` is the command-line front end (see :mod:`ovsnet.metrics.__main__`).
"""

from ovsnet.metrics.measures import (
    BOUND_TH,
    boundary_radius,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    disk,
    seg2bmap,
)
from ovsnet.metrics.parallel import evaluate_folder, evaluate_sequences
from ovsnet.metrics.sequences import SequenceEvaluation, evaluate_label_maps, evaluate_sequence
from ovsnet.metrics.tables import GLOBAL_COLUMNS, PER_OBJECT_COLUMNS, PER_SEQUENCE_COLUMNS, DavisEvaluation

__all__ = [
    "BOUND_TH",
    "GLOBAL_COLUMNS",
    "PER_OBJECT_COLUMNS",
    "PER_SEQUENCE_COLUMNS",
    "DavisEvaluation",
    "SequenceEvaluation",
    "boundary_radius",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "disk",
    "evaluate_folder",
    "evaluate_label_maps",
    "evaluate_sequence",
    "evaluate_sequences",
    "seg2bmap",
]
