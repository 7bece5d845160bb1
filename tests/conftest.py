"""Shared fixtures: the real Hydra configs, shrunk to CPU / tiny sizes / a few steps (lightning-hydra-template style).

Every test that trains composes ``conf/train.yaml`` exactly as a user would, then applies ``tiny_overrides`` so the
run takes seconds: a 64x80 synthetic DAVIS-layout folder generated once per session, the tiny ResNet-18 model,
2 steps, no workers, CSV logging, outputs under the test's own ``tmp_path``.

Helpers that are not fixtures (tiny model settings, the scripted ``FakeModel``, DAVIS-layout writers) live in
plain modules beside this one and are imported one way: ``from tests.<module> import ...``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import ovsnet.schemas  # noqa: F401  (registers the config schemas that conf/ group files name)

ROOT = Path(__file__).resolve().parents[1]  # on sys.path (pyproject's pythonpath): tests.*, train, evaluate
CONF_DIR = ROOT / "conf"

# Tests must never reach W&B's servers, and two cores are shared by the whole suite.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(min(2, torch.get_num_threads()))

TINY_SYNTHETIC = {"num_sequences": 4, "num_frames": 6, "size": [64, 80], "seed": 0}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` are skipped when no CUDA device is visible."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine more threads oversubscribe and run much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic DAVIS-2017-layout folder (train and val splits), generated once per session."""
    from ovsnet.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    return Path(generate_dataset(root, **TINY_SYNTHETIC))


def tiny_overrides(tmp_path: Path, data_root: Path | None) -> list[str]:
    """Overrides that shrink any composed training config to a seconds-long CPU run inside ``tmp_path``.

    ``data_root=None`` leaves the data group alone (a non-DAVIS data config, e.g. COCO).
    """
    common = [
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={tmp_path}/data",
        f"paths.log_dir={tmp_path}/logs",
        f"paths.ckpt_dir={tmp_path}/checkpoints",
        f"paths.output_dir={tmp_path}/out",
        f"hydra.run.dir={tmp_path}/out",
        f"hydra.sweep.dir={tmp_path}/multirun",
        "model=tiny",
        "model.model_config.min_size=64",
        "model.model_config.max_size=80",
        "model.warmup_steps=1",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "trainer.max_steps=2",
        "trainer.limit_train_batches=2",  # epochs end with the steps, so validation runs (Lightning skips it mid-epoch)
        "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        "~callbacks.rich_progress_bar",
        "logger=csv",
        "print_config=false",
        "seed=0",
    ]
    if data_root is None:
        return common
    return common + [
        f"data.root={data_root}",
        "data.image_size=80",
        "data.num_workers=0",
        "data.persistent_workers=false",
        "data.val_frame_stride=3",
        "data.frames_per_video=2",
        "data.videos_per_batch=2",
    ]


@pytest.fixture
def compose_train(tmp_path: Path, synthetic_root: Path) -> Callable[..., DictConfig]:
    """``compose_train(*overrides)``: the real ``train.yaml`` composed with the tiny overrides, then ``overrides``."""

    def _compose(*overrides: str, davis_data: bool = True) -> DictConfig:
        GlobalHydra.instance().clear()
        base = tiny_overrides(tmp_path, synthetic_root if davis_data else None)
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train.yaml", overrides=[*base, *overrides], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # resolves ${hydra:...} as in a real run
        with open_dict(cfg):
            del cfg["hydra"]
        GlobalHydra.instance().clear()
        return cfg

    return _compose
