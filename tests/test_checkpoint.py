"""ovsnet.models.checkpoint: the one checkpoint reader, safe by default, every error naming the file.

A real checkpoint written by Lightning for a tiny ``OVSNetModule`` loads with ``weights_only=True`` (also
with OmegaConf hyper-parameters); a crafted checkpoint that would run code on load is refused without
running it; missing, empty, truncated, non-checkpoint and other-architecture files each fail with one line
naming the file, in the library, the video CLI and evaluate.py.
"""

from __future__ import annotations

import fractions
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

import ovsnet.schemas  # noqa: F401 - the typed data/model/trainer schemas the configs extend
from ovsnet.cli import video as video_cli
from ovsnet.data.io import DataError, write_frame, write_label_map
from ovsnet.evaluation import model as evaluation
from ovsnet.inference.settings import checkpoint_settings, resolve, with_inference_settings
from ovsnet.lightning.module import OVSNetModule
from ovsnet.models.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_weights,
    read_checkpoint,
    read_hyperparameters,
    strip_prefix,
)
from ovsnet.models.loading import load_model
from ovsnet.models.ovsnet import build_ovsnet
from tests.commands import modules_loaded_by, subprocess_env
from tests.tiny_models import TINY_MODEL

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


class RunsCode:
    """Unpickling this runs ``touch <marker>``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def lightning_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint written by Lightning's Trainer for a tiny OVSNetModule built from OmegaConf configs, its
    inference settings in the flat names of the checkpoints written before the settings had sections."""
    torch.manual_seed(0)
    module = OVSNetModule(
        model_config=OmegaConf.create(TINY_MODEL),
        inference_settings=OmegaConf.create({"rho_reid": 0.7}),
        warmup_steps=1,
        base_batch_size=None,
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.strategy.connect(module)
    path = tmp_path_factory.mktemp("ckpt") / "last.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def saved(lightning_ckpt: Path) -> dict:
    return torch.load(lightning_ckpt, map_location="cpu", weights_only=False)  # the test's own file


def test_lightning_checkpoint_round_trip(lightning_ckpt: Path, saved: dict) -> None:
    torch.load(lightning_ckpt, map_location="cpu", weights_only=True)  # no special type in it at all
    model = load_model(lightning_ckpt)
    assert not model.training and not hasattr(model, "inference_settings")  # settings travel beside it
    assert checkpoint_settings(lightning_ckpt) == {"reid.rho": 0.7}  # the old flat name, mapped
    assert resolve(None, checkpoint_settings(lightning_ckpt)).reid.rho == 0.7
    stored = {k[len("model.") :]: v for k, v in saved["state_dict"].items()}
    own = model.state_dict()
    assert set(own) == set(stored)
    assert all(torch.equal(own[k], stored[k]) for k in own)
    assert read_hyperparameters(lightning_ckpt)["model_config"] == TINY_MODEL
    # the lightning layer's name is the same loader
    from ovsnet.lightning.module import load_model_from_checkpoint

    assert not load_model_from_checkpoint(lightning_ckpt).training


def test_omegaconf_hyperparameters_load_safely(tmp_path: Path, saved: dict) -> None:
    """Lightning stores hyper-parameters as given: OmegaConf containers (and their type) when built from them."""
    ckpt = dict(saved)
    ckpt["hyper_parameters"] = OmegaConf.create(
        {**saved["hyper_parameters"], "note": "${model_config.backbone}", "sizes": [64, {"max": 96}]}
    )
    ckpt["hparams_type"] = DictConfig
    ckpt["datamodule_hyper_parameters"] = OmegaConf.create({"root": "data", "val_split": None, "scale": 0.5})
    path = tmp_path / "omegaconf.ckpt"
    torch.save(ckpt, path)
    hparams = read_hyperparameters(path)
    assert hparams["note"] == "resnet18" and hparams["sizes"] == [64, {"max": 96}]
    assert hparams["model_config"] == TINY_MODEL  # plain containers
    assert not load_model(path).training
    assert checkpoint_settings(path) == {"reid.rho": 0.7}


def test_code_running_checkpoint_is_refused(tmp_path: Path, saved: dict) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "crafted.ckpt"
    torch.save({**saved, "payload": RunsCode(marker)}, path)
    for load in (load_model, read_checkpoint, read_hyperparameters, load_checkpoint):
        with pytest.raises(CheckpointError) as info:
            load(path)
        message = str(info.value)
        assert str(path) in message and "trust_checkpoint=true" in message and "system" in message
        assert "\n" not in message
    assert not marker.exists()
    # evaluation refuses it too, before the model loads (the inference settings are read first)
    with pytest.raises(CheckpointError, match="trust_checkpoint=true"):
        checkpoint_settings(path)
    with pytest.raises(CheckpointError, match="trust_checkpoint=true"):
        evaluation.cached_model(path, cache=False)
    assert not marker.exists()


def test_trust_loads_other_types_in_full(tmp_path: Path) -> None:
    path = tmp_path / "fraction.ckpt"
    state = {"w": torch.ones(2)}
    torch.save({"state_dict": state, "hyper_parameters": {"ratio": fractions.Fraction(1, 3)}}, path)
    with pytest.raises(CheckpointError, match=r"fractions\.Fraction.*trust_checkpoint=true"):
        read_hyperparameters(path)
    assert read_hyperparameters(path, trust=True)["ratio"] == fractions.Fraction(1, 3)
    assert torch.equal(read_checkpoint(path, trust=True)["w"], state["w"])
    with pytest.raises(CheckpointError, match="--trust-checkpoint"):
        read_checkpoint(path, trust_flag="--trust-checkpoint")


def _truncated(tmp_path: Path, source: Path) -> Path:
    path = tmp_path / "truncated.ckpt"
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("missing", "no such file"),
        ("empty", "is empty"),
        ("truncated", "truncated or corrupt"),
        ("text", "not a PyTorch checkpoint"),
        ("no_state_dict", "no state dict of tensors"),
        ("no_model_config", "stores no model_config"),
        ("other_architecture", "does not match this architecture"),
        ("other_shapes", "shape mismatch"),
    ],
)
def test_bad_checkpoints_name_the_file(
    tmp_path: Path, lightning_ckpt: Path, saved: dict, kind: str, expected: str
) -> None:
    path = tmp_path / f"{kind}.ckpt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path = _truncated(tmp_path, lightning_ckpt)
    elif kind == "text":
        path.write_text("epoch: 3\nthis is a text file renamed .ckpt\n")
    elif kind == "no_state_dict":
        torch.save([1, 2, 3], path)
    elif kind == "no_model_config":
        torch.save({"state_dict": saved["state_dict"]}, path)
    elif kind == "other_architecture":
        torch.save({**saved, "state_dict": {"model.encoder.weight": torch.zeros(3, 3)}}, path)
    elif kind == "other_shapes":
        other = build_ovsnet(**{**TINY_MODEL, "mga_channels": 8})
        state = {f"model.{k}": v for k, v in other.state_dict().items()}
        torch.save({**saved, "state_dict": state}, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert isinstance(info.value, DataError) and isinstance(info.value, ValueError)
    assert str(path) in message and expected in message and "\n" not in message


def test_prefixes_and_partial_weights(tmp_path: Path, saved: dict) -> None:
    state = saved["state_dict"]
    assert strip_prefix(state) == {k[len("model.") :]: v for k, v in state.items()}
    assert strip_prefix({"a.w": torch.ones(1)}) == {"a.w": torch.ones(1)}
    assert list(strip_prefix({"model.detector.x": torch.ones(1)}, ("model.detector.", "model."))) == ["x"]
    # a new head (no MGA) keeps the matching keys with strict=False, and is refused with strict=True
    path = tmp_path / "reid_only.ckpt"
    torch.save({**saved, "state_dict": {k: v for k, v in state.items() if ".mga." not in k}}, path)
    model = build_ovsnet(**TINY_MODEL)
    with pytest.raises(CheckpointError, match=r"reid_only\.ckpt.*missing"):
        load_weights(model, path)
    load_weights(model, path, strict=False)
    key = "detector.backbone.body.conv1.weight"
    assert torch.equal(model.state_dict()[key], state[f"model.{key}"])


def test_video_cli_refuses_and_names_its_flag(
    tmp_path: Path, saved: dict, lightning_ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = tmp_path / "frames"
    for t in range(2):
        write_frame(frames / f"{t:05d}.jpg", np.full((64, 64, 3), 40 * t, np.uint8))
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 1
    write_label_map(tmp_path / "mask.png", mask)
    crafted = tmp_path / "crafted.ckpt"
    torch.save({**saved, "payload": RunsCode(tmp_path / "pwned")}, crafted)
    truncated = _truncated(tmp_path, lightning_ckpt)
    for ckpt, expected in ((crafted, "--trust-checkpoint"), (truncated, "truncated or corrupt")):
        argv = ["--video", frames, "--first-mask", tmp_path / "mask.png", "--ckpt", ckpt, "--out", tmp_path]
        with pytest.raises(SystemExit) as info:
            video_cli.main([str(a) for a in argv] + ["--device", "cpu", "--no-progress"])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert f"--ckpt {ckpt}: checkpoint {ckpt}" in err and expected in err
    assert not (tmp_path / "pwned").exists()
    assert "--trust-checkpoint" in video_cli.build_parser().format_help()


def test_evaluate_py_names_a_truncated_checkpoint(tmp_path: Path, lightning_ckpt: Path) -> None:
    path = _truncated(tmp_path, lightning_ckpt)
    out = tmp_path / "run"
    env = subprocess_env()
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "evaluate.py"),
            "data=synthetic",
            f"data.root={tmp_path / 'data'}",
            f"ckpt_path={path}",
            "device=cpu",
            f"paths.root_dir={out}",
            f"paths.log_dir={out}/logs",
            f"paths.output_dir={out}",
            f"hydra.run.dir={out}",
            "logger=csv",
            "progress=false",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert f"checkpoint {path} is truncated or corrupt" in proc.stderr, proc.stderr[-3000:]


def test_evaluation_passes_trust_checkpoint(tmp_path: Path, saved: dict) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        assert compose("evaluate.yaml").trust_checkpoint is False
    GlobalHydra.instance().clear()
    path = tmp_path / "fraction.ckpt"
    hparams = {**saved["hyper_parameters"], "ratio": fractions.Fraction(1, 3)}
    torch.save({**saved, "hyper_parameters": hparams}, path)
    cfg = OmegaConf.create({"ckpt_path": str(path), "trust_checkpoint": False})
    with pytest.raises(CheckpointError, match=r"fraction\.ckpt.*trust_checkpoint=true"):
        evaluation.load_model_from_config(cfg, "cpu")
    cfg.trust_checkpoint = True
    model = evaluation.load_model_from_config(cfg, "cpu")
    assert not model.training
    assert checkpoint_settings(path, trust=True) == {"reid.rho": 0.7}
    evaluation._MODEL_CACHE.clear()


def test_loader_and_video_cli_import_no_upper_layer() -> None:
    """models.checkpoint and the video CLI stay below Lightning and evaluation (imports run downward)."""
    loaded = modules_loaded_by("import ovsnet.models.checkpoint, ovsnet.cli.video")
    assert [m for m in loaded if "lightning" in m or m == "ovsnet.evaluation"] == []


def test_checkpoint_reading_builds_no_model() -> None:
    """Reading checkpoints (models.checkpoint, which the detector uses) imports no model, not even lazily:
    building is models.loading, so the modules form no import circle."""
    import ast

    tree = ast.parse((ROOT / "src" / "ovsnet" / "models" / "checkpoint.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.startswith("ovsnet.models.")}, imported


def test_with_inference_settings_writes_a_new_checkpoint(tmp_path: Path, lightning_ckpt: Path) -> None:
    before = lightning_ckpt.read_bytes()
    out = with_inference_settings(lightning_ckpt, tmp_path / "final.ckpt", {"cascade.switch_iou": 0.5})
    assert lightning_ckpt.read_bytes() == before  # the source is left as it is
    # the old flat rho_reid is mapped and stored nested beside the new value
    assert read_hyperparameters(out)["inference_settings"] == {
        "reid": {"rho": 0.7},
        "cascade": {"switch_iou": 0.5},
    }
    assert checkpoint_settings(out) == {"reid.rho": 0.7, "cascade.switch_iou": 0.5}
    torch.load(out, map_location="cpu", weights_only=True)  # still loads safely
    assert read_hyperparameters(out)["model_config"] == TINY_MODEL
    with pytest.raises(CheckpointError, match="hyper_parameters"):
        bare = tmp_path / "bare.pt"
        torch.save({"state_dict": {"w": torch.zeros(1)}}, bare)
        with_inference_settings(bare, tmp_path / "x.ckpt", {"reid.rho": 1.0})
