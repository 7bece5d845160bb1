"""train.py and the configs: every config composes, each stage fits, resume after a kill, DDP, multirun, W&B."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException

from ovsnet.models.detector import BACKBONES
from ovsnet.training import train
from tests.commands import run_train
from tests.commands import subprocess_env as _env
from tests.commands import train_cmd as _train_cmd
from tests.conftest import CONF_DIR

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
GROUP_OPTIONS = {
    group: sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    for group in ("data", "trainer", "logger", "callbacks", "debug", "hparams_search")
}


def _compose_plain(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train.yaml", overrides=list(overrides), return_hydra_config=True)
    GlobalHydra.instance().clear()
    return cfg


def test_every_config_option_composes() -> None:
    """No experiment, model or group option may silently break (composition and interpolation)."""
    for experiment in EXPERIMENTS:
        for model in MODELS:
            cfg = _compose_plain(f"experiment={experiment}", f"model={model}")
            assert cfg.model._target_ == "ovsnet.lightning.module.OVSNetModule"
            assert cfg.model.model_config.backbone in BACKBONES
    for group, options in GROUP_OPTIONS.items():
        assert options, f"conf/{group} is empty"
        for option in options:
            _compose_plain(f"{group}={option}")


def test_paper_recipe_values() -> None:
    cfg = _compose_plain("experiment=paper")
    assert cfg.model.model_config.backbone == "resnet50" and cfg.model.lambda_refine == 1.3
    assert cfg.model.optimizer.lr == 0.04 and cfg.model.optimizer.momentum == 0.9
    assert cfg.model.optimizer.weight_decay == 1e-4 and cfg.model.scheduler.gamma == 0.1
    assert cfg.model.model_config.box_score_thresh == 0.05 and cfg.model.model_config.box_nms_thresh == 0.6
    assert cfg.data.frames_per_video * cfg.data.videos_per_batch == 32
    assert cfg.data.per_dataset_finetune and cfg.data.lucid_samples_per_frame > 0
    assert cfg.trainer.max_epochs == 3 and cfg.model.init_checkpoint.endswith("davis_init/last.ckpt")


def test_unknown_key_fails_with_hydras_message() -> None:
    with pytest.raises(ConfigCompositionException, match="bogus"):
        _compose_plain("model.model_config.bogus=1")
    with pytest.raises(ConfigCompositionException):
        _compose_plain("experiment=no_such_experiment")


def _ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.slow
def test_paper_stages_fit_and_chain_by_checkpoint(compose_train, tmp_path: Path) -> None:
    """coco_pretrain -> davis_init -> davis_full -> paper, each 2 steps, each starting from the previous one."""
    from tests.coco_fixtures import make_coco

    _, train_json = make_coco(tmp_path / "coco")
    coco = [
        f"data.image_dir={tmp_path}/coco/images",
        f"data.ann_file={train_json}",
        "data.val_ann_file=null",
        "data.val_image_dir=null",
        "data.min_sizes=[64,80]",
        "data.max_size=96",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.persistent_workers=false",
        "model.model_config.min_size=64",
        "model.model_config.max_size=96",
        "trainer.limit_val_batches=0",
    ]
    metrics = train(compose_train("experiment=coco_pretrain", *coco, davis_data=False))
    assert "train/loss" in metrics
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values() if isinstance(v, float))
    assert metrics["ckpt_last"].endswith("last.ckpt")
    previous = _ckpt(tmp_path / "checkpoints/coco_pretrain/last.ckpt")
    assert previous["global_step"] == 2
    assert previous["state_dict"]["model.detector.roi_heads.box_predictor.cls_score.weight"].shape[0] == 81

    for stage in ("davis_init", "davis_full", "paper"):
        cfg = compose_train(
            f"experiment={stage}",
            "data.lucid_samples_per_frame=1",
            "data.val_split=val",
            "trainer.limit_train_batches=2",
        )
        metrics = train(cfg)
        assert "train/loss" in metrics and "val/loss" in metrics
        ckpt = _ckpt(tmp_path / f"checkpoints/{stage}/last.ckpt")
        state = ckpt["state_dict"]
        assert state["model.detector.roi_heads.box_predictor.cls_score.weight"].shape[0] == 2
        assert any(k.startswith("model.reid_head.") for k in state) == (stage != "davis_init")
        assert any(k.startswith("model.mga.") for k in state) == (stage != "davis_init")
        assert ckpt["hyper_parameters"]["model_config"]["backbone"] == "resnet18"


@pytest.mark.slow
def test_demo_experiment_fits_and_logs_every_term(compose_train, tmp_path: Path) -> None:
    metrics = train(compose_train("experiment=demo"))
    for term in ("mask", "loc", "cls", "reid", "refine"):
        assert f"train/loss_{term}_epoch" in metrics or f"train/loss_{term}" in metrics
    csv_files = list((tmp_path / "out").rglob("metrics.csv"))
    assert csv_files, "the CSV logger must always write metrics"
    columns = csv_files[0].read_text().splitlines()[0].split(",")
    assert "train/loss_step" in columns, columns
    assert {"lr/main", "lr/warmup"} & set(columns), columns  # LearningRateMonitor, named per scheduler
    assert (tmp_path / "out/checkpoints/last.ckpt").is_file()


def test_resume_restores_model_optimizer_scheduler_and_step(compose_train, tmp_path: Path) -> None:
    """Two epochs in one go vs one epoch + resume from last.ckpt: same step, epoch, lr; weights pick up exactly."""
    common = [
        "trainer.max_steps=-1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=0",
        "model.scheduler.step_size=1",
    ]
    train(compose_train(*common, "trainer.max_epochs=1"))
    last = tmp_path / "out/checkpoints/last.ckpt"
    first = _ckpt(last)
    assert first["global_step"] == 2

    seen: dict = {}

    class Capture(pl.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            seen["step"] = trainer.global_step
            seen["state"] = {k: v.clone() for k, v in pl_module.state_dict().items()}
            seen["momentum"] = {
                k: v["momentum_buffer"].clone()
                for k, v in trainer.optimizers[0].state_dict()["state"].items()
            }
            seen["lr"] = trainer.optimizers[0].param_groups[0]["lr"]

    cfg = compose_train(*common, "trainer.max_epochs=2", f"ckpt_path={last}")
    import hydra

    from ovsnet.hydra_utils import instantiate_group as _instantiate_group  # what train() uses

    trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=[*_instantiate_group(cfg.callbacks), Capture()],
        logger=_instantiate_group(cfg.logger),
    )
    module = hydra.utils.instantiate(cfg.model, _convert_="all")
    trainer.fit(module, datamodule=hydra.utils.instantiate(cfg.data, _convert_="all"), ckpt_path=str(last))
    assert seen["step"] == 2
    for key, value in first["state_dict"].items():
        assert torch.equal(seen["state"][key], value), key
    saved = first["optimizer_states"][0]["state"]
    assert set(saved) == set(seen["momentum"])
    assert all(torch.equal(saved[k]["momentum_buffer"], seen["momentum"][k]) for k in saved)
    assert seen["lr"] == pytest.approx(first["optimizer_states"][0]["param_groups"][0]["lr"])
    assert trainer.global_step == 4 and trainer.current_epoch == 2
    # StepLR(step_size=1, gamma=0.1) stepped once per finished epoch, warm-up (1 step) long over
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01 * 0.1**2)


class CrashAfterFirstStep(pl.Callback):
    """A crash in the second step, after ``last.ckpt`` of the first was written (a killed run)."""

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == 1:
            raise RuntimeError("simulated crash")


def test_resume_mid_epoch_finishes_the_epoch_with_its_unseen_batches(
    compose_train, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    """A run killed after 1 of 3 batches resumes with batches 2 and 3 of the same shuffle: the epoch ends
    where an uninterrupted one does, and Lightning does not warn that the loader is not resumable."""
    from ovsnet.lightning.datamodules import ResumableBatches

    seen: list[list[int]] = []
    real_iter = ResumableBatches.__iter__

    def recording(self: ResumableBatches):  # the batches the loader actually loads
        for batch in real_iter(self):
            seen.append(list(batch))
            yield batch

    monkeypatch.setattr(ResumableBatches, "__iter__", recording)
    common = [
        "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=0",
        "trainer.max_steps=-1",
        "trainer.max_epochs=1",
        "optimized_metric=null",
        "callbacks.last_checkpoint.every_n_train_steps=1",
    ]
    train(compose_train(*common))
    whole_epoch, seen[:] = list(seen), []
    assert len(whole_epoch) == 3
    whole = _ckpt(tmp_path / "out/checkpoints/last.ckpt")

    out = f"paths.output_dir={tmp_path / 'killed'}"
    crash = "+callbacks.crash._target_=tests.test_train.CrashAfterFirstStep"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(compose_train(*common, out, crash))
    last = tmp_path / "killed/checkpoints/last.ckpt"
    assert _ckpt(last)["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"epoch": 0, "batches": 1}]
    seen[:] = []
    train(compose_train(*common, out, f"ckpt_path={last}"))
    assert seen == whole_epoch[1:]  # the epoch goes on where it stopped, same shuffle, nothing loaded twice
    resumed = _ckpt(last)
    assert (resumed["global_step"], resumed["epoch"]) == (whole["global_step"], whole["epoch"])
    assert resumed["global_step"] == 3
    assert not [w for w in recwarn if "not resumable" in str(w.message)]


def test_next_epoch_is_shuffled_anew(synthetic_root: Path) -> None:
    """Lightning's set_epoch reaches the video batch sampler (it was never called: every epoch repeated the
    first one's batches)."""
    from lightning_fabric.utilities.data import _set_sampler_epoch

    from ovsnet.lightning.datamodules import DAVISDataModule

    dm = DAVISDataModule(str(synthetic_root), frames_per_video=2, videos_per_batch=2, num_workers=0)
    dm.setup("fit")
    loader = dm.train_dataloader()
    first = [list(b) for b in loader.batch_sampler]
    _set_sampler_epoch(loader, 1)
    assert [list(b) for b in loader.batch_sampler] != first
    _set_sampler_epoch(loader, 0)
    assert [list(b) for b in loader.batch_sampler] == first


def _one_line_exit(capsys: pytest.CaptureFixture[str], cfg) -> str:
    from ovsnet.training import run_training_job

    with pytest.raises(SystemExit) as info:
        run_training_job(cfg)
    assert info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("train.py: error: "), err
    return err[0]


def test_a_value_only_torch_rejects_is_one_line_naming_the_key(
    compose_train, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``model.optimizer.lr=-1`` (torch.optim refuses it inside fit) and ``trainer.max_steps=-5`` (Lightning
    refuses it when the trainer is built): one line naming the key, exit code 2, no traceback."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    import ovsnet.training

    # composed by the test, not run by @hydra.main: no job directory to write train_result.json into
    monkeypatch.setattr(ovsnet.training, "_job_context", lambda: (None, [], False))
    err = _one_line_exit(capsys, compose_train("model.optimizer.lr=-1", "trainer.max_steps=1"))
    assert "model.optimizer.lr=-1" in err and "Invalid learning rate" in err
    err = _one_line_exit(capsys, compose_train("model.warmup_factor=0", "trainer.max_steps=1"))
    assert "model.warmup_factor=0" in err
    err = _one_line_exit(capsys, compose_train("trainer.max_steps=-5"))
    assert "trainer:" in err and "max_steps" in err


@pytest.mark.slow
def test_killed_run_resumes_from_last_ckpt(tmp_path: Path, synthetic_root: Path) -> None:
    common = [
        "trainer.max_steps=-1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=0",
        "callbacks.model_checkpoint.monitor=null",
        "callbacks.model_checkpoint.save_on_train_epoch_end=true",
        "optimized_metric=null",
    ]
    last = tmp_path / "out/checkpoints/last.ckpt"
    proc = subprocess.Popen(
        _train_cmd(tmp_path, synthetic_root, *common, "trainer.max_epochs=1000"),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.time() + 240
    try:
        while not last.is_file() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert last.is_file(), f"no checkpoint before the kill: {proc.stderr.read().decode()[-2000:]}"
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGKILL)  # a hard kill: no teardown, no final checkpoint
    finally:
        proc.wait(timeout=60)
    killed_at = _ckpt(last)
    done_epochs = killed_at["global_step"] // 2  # 2 batches per epoch; the checkpoint is saved per epoch
    assert done_epochs >= 1
    result = run_train(
        tmp_path,
        synthetic_root,
        *common,
        f"trainer.max_epochs={done_epochs + 2}",
        f"ckpt_path={last}",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = _ckpt(last)
    assert resumed["global_step"] == killed_at["global_step"] + 2 * 2  # exactly the two missing epochs


@pytest.mark.slow
def test_two_process_ddp_keeps_ranks_identical(tmp_path: Path, synthetic_root: Path) -> None:
    dump = tmp_path / "weights"
    result = run_train(
        tmp_path,
        synthetic_root,
        "trainer=ddp_sim",
        "trainer.limit_val_batches=0",
        "optimized_metric=null",
        f"+callbacks.dump={{_target_: rank_weights.DumpWeights, out: '{dump}'}}",
    )
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [torch.load(dump / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert all(r["world_size"] == 2 and r["step"] == 2 for r in ranks)
    first, second = ranks[0]["state"], ranks[1]["state"]
    assert set(first) == set(second)
    # parameters must agree (gradients are all-reduced); BN running statistics are per-rank buffers
    # (SyncBatchNorm, the trainer=ddp option, needs GPUs)
    params = [k for k in first if first[k].is_floating_point() and "running_" not in k]
    differs = [k for k in params if not torch.allclose(first[k], second[k])]
    assert not differs, f"ranks diverged on {differs[:5]}"


@pytest.mark.slow
def test_two_value_multirun(tmp_path: Path, synthetic_root: Path) -> None:
    result = run_train(
        tmp_path,
        synthetic_root,
        "-m",
        "model.lambda_refine=1.0,1.3",
        "trainer.limit_val_batches=1",
        "paths.output_dir=${hydra:runtime.output_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p for p in (tmp_path / "multirun").iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in runs] == ["0", "1"]
    lambdas = []
    for run in runs:
        overrides = (run / ".hydra/overrides.yaml").read_text()
        lambdas.append(1.0 if "model.lambda_refine=1.0" in overrides else 1.3)
        ckpt = _ckpt(run / "checkpoints/last.ckpt")
        assert ckpt["hyper_parameters"]["lambda_refine"] == lambdas[-1]
    assert lambdas == [1.0, 1.3]


@pytest.mark.slow
def test_wandb_offline_run_folder_holds_the_metrics(tmp_path: Path, synthetic_root: Path) -> None:
    result = run_train(tmp_path, synthetic_root, "logger=many")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "out/wandb").glob("offline-run-*"))
    assert len(runs) == 1, "W&B must run offline (syncable later) when no API key is set"
    logs = list(runs[0].glob("run-*.wandb"))
    assert logs, "the offline run log (what `wandb sync` uploads) is missing"
    record = logs[0].read_bytes()  # protobuf records: history keys and the config are stored as strings
    assert b"train/loss_step" in record, "losses must be logged"
    assert b"grad_norm/total" in record, "gradient norms must be logged"
    assert b"model_config" in record and b"lambda_refine" in record, "the config must be logged"
    assert list((tmp_path / "out/csv").rglob("metrics.csv")), "CSV is always written too"
