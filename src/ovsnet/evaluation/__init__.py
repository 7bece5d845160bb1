"""Dataset evaluation and single-video segmentation: the library side of ``evaluate.py``.

- :mod:`~ovsnet.evaluation.jobs`: ``run_evaluation`` (segment, score, write, log a split; resumable) and
  ``run_video`` (``task=video``);
- :mod:`~ovsnet.evaluation.settings`: the typed ``conf/inference`` schema, flow and cascade settings, the
  checkpoint's stored settings against the user's overrides;
- :mod:`~ovsnet.evaluation.model`: the checkpoint's network, kept loaded across the jobs of a sweep;
- :mod:`~ovsnet.evaluation.scoring`: totals, official scores and the model-free baselines.

Sweep tables and their Hydra callback are entry-point code: :mod:`ovsnet.cli.sweep_summary`.
"""

from ovsnet.evaluation.jobs import SUMMARY_FILE, run_evaluation, run_video

__all__ = ["SUMMARY_FILE", "run_evaluation", "run_video"]
