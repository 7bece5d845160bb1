"""DAVIS-protocol evaluation (J, F, statistics, folder evaluation, CSV/JSON), identical to the official tool."""

from ovsnet.metrics.davis import (
    BOUND_TH,
    GLOBAL_COLUMNS,
    PER_OBJECT_COLUMNS,
    PER_SEQUENCE_COLUMNS,
    DavisEvaluation,
    SequenceEvaluation,
    boundary_radius,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    disk,
    evaluate_folder,
    evaluate_label_maps,
    evaluate_sequence,
    evaluate_sequences,
    seg2bmap,
)

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
