"""Train OVS-Net: ``python train.py [experiment=demo] [group=option ...] [key=value ...]``.

Thin Hydra entrypoint: compose the config and call :func:`ovsnet.training.run_training_job`, which trains
(seed, instantiate datamodule/module/callbacks/loggers/trainer, fit, optionally test) and returns
``cfg.optimized_metric`` for hyper-parameter sweepers (validated once at the end of fit when the run stopped
before its first validation; NaN with a warning when it still does not exist). Each job writes
``train_result.json`` into its output dir; a multirun ends with ``sweep_summary.{csv,md}`` in the sweep dir
(``hydra.callbacks.train_sweep_summary``). A diverging run stops with one line (``training diverged at step
N, loss X; lower the learning rate ...``) and exit code 2; in a multirun the job is recorded as diverged and
returns NaN, and the sweep goes on. Bad data, or a value only torch or Lightning rejects (``model.optimizer.lr=-1``,
``trainer.max_steps=-5``), is one line naming the file or key (exit code 2) and Ctrl-C one line saying how to
resume (exit code 130). Unknown keys fail with Hydra's own message.
"""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

import ovsnet.schemas  # noqa: F401 - registers the typed trainer, model and data schemas before Hydra composes

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    from ovsnet.training import run_training_job

    return run_training_job(cfg)


if __name__ == "__main__":
    main()
