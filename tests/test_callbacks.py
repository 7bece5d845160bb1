"""VideoSegmentationCallback: a 2-step fit logs val/J, val/F, val/JF; the DDP split and reduction add up."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from ovsnet.data.davis import load_davis
from ovsnet.inference.cascade import PATHS
from ovsnet.lightning.callbacks import VideoSegmentationCallback, truncate_sequence
from ovsnet.lightning.datamodules import DAVISDataModule
from ovsnet.lightning.module import OVSNetModule
from tests.commands import modules_loaded_by
from tests.tiny_models import TINY_TRAIN_MODEL

pytestmark = pytest.mark.usefixtures("one_thread")

# no motion (conf/inference/flow/none.yaml): stateless, so a video's result does not depend on its rank
FAST_FLOW = {"_target_": "ovsnet.inference.flow.ZeroFlow"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ovsnet.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("davis")
    return Path(
        generate_dataset(
            root, num_sequences=4, num_frames=5, size=(64, 80), seed=0, val_fraction=0.5, progress=False
        )
    )


def _datamodule(root: Path) -> DAVISDataModule:
    return DAVISDataModule(
        str(root),
        image_size=80,
        frames_per_video=2,
        videos_per_batch=2,
        num_workers=0,
        persistent_workers=False,
        val_frame_stride=3,
        val_batch_size=2,
        seed=0,
    )


def test_fit_logs_video_metrics(tmp_path: Path, data_root: Path) -> None:
    torch.manual_seed(0)
    module = OVSNetModule(model_config=TINY_TRAIN_MODEL, warmup_steps=1, base_batch_size=None)
    callback = VideoSegmentationCallback(
        every_n_epochs=1,
        max_sequences=2,
        max_frames=4,
        inference={"cascade": {"rho_iou": 0.3}, "flow": {"_target_": "ovsnet.inference.flow.DISFlow"}},
        overrides={"reid.rho": 2.3},
    )
    trainer = pl.Trainer(
        max_steps=2,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        logger=[CSVLogger(str(tmp_path)), TensorBoardLogger(str(tmp_path / "tb"))],
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[callback],
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, datamodule=_datamodule(data_root))
    metrics = trainer.callback_metrics
    for name in ("val/J", "val/F", "val/JF"):
        assert name in metrics and 0.0 <= float(metrics[name]) <= 1.0
    assert float(metrics["val/JF"]) == pytest.approx((float(metrics["val/J"]) + float(metrics["val/F"])) / 2)
    assert float(metrics["val/fps"]) > 0
    assert float(metrics["train/reid_spread"]) > 0  # the Re-ID collapse signal is logged
    # 2 videos x 3 segmented frames (4 kept, the first is given) x their objects
    assert sum(float(metrics[f"val/paths/{p}"]) for p in PATHS) > 0
    assert module.model.training  # the training mode is restored after the online pass
    assert not any(tmp_path.rglob("*.png"))  # the temporary result PNGs are removed
    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events and any(b"val/overlays" in e.read_bytes() for e in events)  # the contact sheet


class _FakeStrategy:
    def __init__(self) -> None:
        self.reduced: list[torch.Tensor] = []

    def reduce(self, tensor: torch.Tensor, reduce_op: str = "mean") -> torch.Tensor:
        assert reduce_op == "sum"
        self.reduced.append(tensor.clone())
        return tensor


class _FakeModule:
    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.device = model, torch.device("cpu")
        self.logged: dict[str, float] = {}

    def log(self, name: str, value: float, **_: Any) -> None:
        self.logged[name] = float(value)


def _fake_trainer(root: Path, world: int, rank: int, log_dir: Path) -> Any:
    return SimpleNamespace(
        world_size=world,
        global_rank=rank,
        current_epoch=0,
        sanity_checking=False,
        datamodule=_datamodule(root),
        strategy=_FakeStrategy(),
        log_dir=str(log_dir),
        default_root_dir=str(log_dir),
        loggers=[],
        precision="32-true",
        global_step=0,
    )


def test_ranks_split_videos_and_sums_add_up(tmp_path: Path, data_root: Path) -> None:
    """Rank r takes every world_size-th video; per-rank sums reduced over ranks give the 1-process result."""
    from ovsnet.models.ovsnet import build_ovsnet

    torch.manual_seed(0)
    model = build_ovsnet(**TINY_TRAIN_MODEL)
    callback = VideoSegmentationCallback(max_frames=4, log_media=False, inference={"flow": FAST_FLOW})
    single = _FakeModule(model)
    callback.on_validation_epoch_end(_fake_trainer(data_root, 1, 0, tmp_path), single)
    assert set(single.logged) >= {"val/J", "val/F", "val/JF", "val/fps"}
    totals = []
    for rank in (0, 1):
        trainer = _fake_trainer(data_root, 2, rank, tmp_path)
        callback.on_validation_epoch_end(trainer, _FakeModule(model))
        totals.append(trainer.strategy.reduced[0])
    videos = load_davis(data_root, 2017, "val")
    assert len(videos) == 2
    summed = totals[0] + totals[1]
    per_rank_objects = [float(t[2]) for t in totals]
    assert per_rank_objects == [float(len(v.object_ids)) for v in videos]  # rank r got video r
    assert float(summed[0] / summed[2]) == pytest.approx(single.logged["val/J"])
    assert float(summed[1] / summed[2]) == pytest.approx(single.logged["val/F"])
    assert not any(tmp_path.rglob("*.png"))  # temporary results are removed


def test_truncate_and_arguments(data_root: Path) -> None:
    seq = load_davis(data_root, 2017, "val")[0]
    short = truncate_sequence(seq, 3)
    assert len(short) == 3 and short.annotated_indices == [0, 1, 2] and short.name == seq.name
    assert truncate_sequence(seq, None) is seq
    with pytest.raises(ValueError, match="max_frames"):
        VideoSegmentationCallback(max_frames=2)
    with pytest.raises(ValueError, match="rho_typo"):
        VideoSegmentationCallback(overrides={"reid.rho_typo": 1.0})
    with pytest.raises(ValueError, match="inference.reid.rho"):  # an old flat name: its new key is named
        VideoSegmentationCallback(overrides={"rho_reid": 1.0})
    with pytest.raises(ValueError, match="_target_"):
        VideoSegmentationCallback(inference={"flow": {"backend": "dis"}})


def test_settings_precedence_preset_then_module_then_overrides() -> None:
    """The module's stored settings (here in the old flat names) beat the preset; overrides beat both."""
    callback = VideoSegmentationCallback(
        inference={"name": "x", "reid": {"rho": 2.0}, "cascade": {"rho_iou": 0.4}},
        overrides={"cascade.switch_iou": 0.6},
    )
    module = SimpleNamespace(hparams={"inference_settings": {"rho_reid": 0.7, "switch_iou": 0.5}})
    config = callback._config_for(module)
    assert (config.reid.rho, config.cascade.rho_iou, config.cascade.switch_iou) == (0.7, 0.4, 0.6)
    assert callback._config_for(SimpleNamespace(hparams={})).reid.rho == 2.0


def test_validation_videos_come_from_the_public_datamodule_api(data_root: Path) -> None:
    """The callback reads ``val_sequences()``; the datamodule serves the same videos as the data loader."""
    videos = _datamodule(data_root).val_sequences()
    assert [v.name for v in videos] == [v.name for v in load_davis(data_root, 2017, "val")]


def test_callback_imports_no_evaluation() -> None:
    loaded = modules_loaded_by("import ovsnet.lightning.callbacks")
    assert [m for m in loaded if m.startswith("ovsnet.evaluation")] == []
