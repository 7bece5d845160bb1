"""Command-line programs: the video CLI, sweep summaries and the scripted train-then-evaluate stages of the
demo, ``make davis16`` and the benchmarks.

The top layer: it may import every library layer, and no library module imports it. What the entry points
share with the library (composing configs, W&B, one-line errors) lives below it: :mod:`ovsnet.hydra_utils`,
:mod:`ovsnet.wandb_utils`, :mod:`ovsnet.errors`.
"""
