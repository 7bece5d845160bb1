"""Typed configs (ovsnet.schemas): a wrong value type fails at compose time naming its key; valid configs keep
their meaning; the schemas follow the signatures they are read from."""

from __future__ import annotations

import inspect
import pickle
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

import hydra
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import MISSING, DictConfig, OmegaConf

import ovsnet.schemas  # noqa: F401  (registers the schemas before any compose below)
from ovsnet.schemas import build_schemas, schema_of_target
from ovsnet.schemas.registry import MODEL_CONFIG_WIDENED
from ovsnet.schemas.signatures import annotation_type
from tests.conftest import CONF_DIR, ROOT

GROUPS = ("trainer", "model", "data")
OPTIONS = [(group, p.stem) for group in GROUPS for p in sorted((CONF_DIR / group).glob("*.yaml"))]
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def _compose(*overrides: str) -> DictConfig:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("train.yaml", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def _messages(exc: BaseException) -> str:
    """The exception and its causes, as a user sees them with HYDRA_FULL_ERROR unset."""
    text = []
    while exc is not None:
        text.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(text)


def _assert_typed(cfg: DictConfig) -> None:
    for group in GROUPS:
        node = cfg[group]
        assert OmegaConf.get_type(node) is schema_of_target(node._target_), f"{group} is not typed"
    assert OmegaConf.get_type(cfg.model.model_config) is build_schemas()["ModelBuildConfig"]


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_group_option_composes_with_its_schema(group: str, option: str) -> None:
    _assert_typed(_compose(f"{group}={option}"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_with_its_schemas(experiment: str) -> None:
    _assert_typed(_compose(f"experiment={experiment}"))


@pytest.mark.parametrize("option", [option for group, option in OPTIONS if group == "data"])
def test_evaluate_config_types_its_data_group(option: str) -> None:
    """evaluate.py reads the same data files: typed there too (compose_config registers every schema)."""
    from ovsnet.hydra_utils import compose_config

    data = compose_config("evaluate.yaml", [f"data={option}"]).data
    assert OmegaConf.get_type(data) is schema_of_target(data._target_)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.max_steps=abc", "trainer.max_steps"),
        ("trainer.enable_progress_bar=maybe", "trainer.enable_progress_bar"),
        ("model.lambda_refine=abc", "model.lambda_refine"),
        ("model.warmup_steps=1.5", "model.warmup_steps"),
        ("model.model_config.mga_size=big", "model.model_config.mga_size"),
        ("data.num_workers=many", "data.num_workers"),
        ("data.augment=sometimes", "data.augment"),
        ("data.min_sizes=[640,big]", "data.min_sizes"),
    ],
)
def test_wrong_type_fails_at_compose_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigCompositionException) as info:
        _compose("experiment=demo", override)
    assert f"full_key: {key}" in _messages(info.value)


def test_wrong_type_in_a_coco_data_config_names_the_key() -> None:
    with pytest.raises(ConfigCompositionException) as info:
        _compose("data=coco", "data.batch_size=four")
    assert "full_key: data.batch_size" in _messages(info.value)


def test_a_key_no_code_takes_is_still_refused() -> None:
    for override, key in [("trainer.max_stepz=3", "trainer.max_stepz"), ("data.frames=2", "data.frames")]:
        with pytest.raises(ConfigCompositionException) as info:
            _compose(override)
        assert f"full_key: {key}" in _messages(info.value)


def test_an_argument_the_yaml_leaves_out_is_set_without_plus() -> None:
    """Every argument of the code is in the schema: no ``+`` needed (one is still accepted on a null default)."""
    assert _compose("trainer.detect_anomaly=true").trainer.detect_anomaly is True
    assert _compose("+trainer.enable_checkpointing=false").trainer.enable_checkpointing is False


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("trainer.max_time=00:00:01:00", "trainer.max_time", "00:00:01:00"),
        ("trainer.devices=[0,1]", "trainer.devices", [0, 1]),
        ("trainer.devices=auto", "trainer.devices", "auto"),
        ("trainer.precision=bf16-mixed", "trainer.precision", "bf16-mixed"),
        ("trainer.precision=16", "trainer.precision", 16),
        # int = batches, float = fraction of an epoch: the union must not coerce one into the other
        ("trainer.val_check_interval=100", "trainer.val_check_interval", 100),
        ("trainer.val_check_interval=0.25", "trainer.val_check_interval", 0.25),
        ("trainer.limit_train_batches=2", "trainer.limit_train_batches", 2),
        ("trainer.fast_dev_run=true", "trainer.fast_dev_run", True),
        ("trainer.max_epochs=null", "trainer.max_epochs", None),
        ("trainer.enable_checkpointing=false", "trainer.enable_checkpointing", False),
        ("model.lambda_refine=1", "model.lambda_refine", 1.0),
        ("model.base_batch_size=null", "model.base_batch_size", None),
        ("model.model_config.min_size=[640,800]", "model.model_config.min_size", [640, 800]),
        ("model.model_config.weights=coco", "model.model_config.weights", "coco"),
        ("model.inference_settings.reid.rho=2.0", "model.inference_settings.reid.rho", 2.0),
        ("data.image_size=80", "data.image_size", 80),
        ("data.generate_synthetic=null", "data.generate_synthetic", None),
    ],
)
def test_valid_overrides_keep_their_value_and_type(override: str, key: str, value: Any) -> None:
    got = OmegaConf.select(_compose("experiment=demo", override), key)
    got = OmegaConf.to_container(got) if OmegaConf.is_config(got) else got
    assert got == value and type(got) is type(value)


def test_composed_values_match_the_yaml() -> None:
    """The schema adds the code's defaults for absent keys and changes no value a file sets."""
    cfg = _compose("experiment=coco_pretrain", "trainer=ddp_sim")
    assert cfg.trainer.strategy._target_ == "pytorch_lightning.strategies.DDPStrategy"
    assert cfg.trainer.precision == "32-true" and cfg.trainer.gradient_clip_val == 10.0
    assert cfg.trainer.devices == 2 and cfg.trainer.max_epochs == 12
    assert list(cfg.model.model_config.min_size) == [640, 720, 800, 920, 1080]
    assert cfg.model.model_config.mask_head_layers == [256, 256, 256, 256]  # build_maskrcnn's default
    assert cfg.data.min_sizes is None and cfg.data.max_size == 1900


def _parameters(obj: Any) -> dict[str, inspect.Parameter]:
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    params = inspect.signature(obj).parameters.values()
    return {p.name: p for p in params if p.name != "self" and p.kind not in skip}


def _targets() -> dict[str, Any]:
    import pytorch_lightning as pl

    from ovsnet.lightning.datamodules import COCODataModule, DAVISDataModule
    from ovsnet.lightning.module import OVSNetModule
    from ovsnet.models.detector import build_maskrcnn
    from ovsnet.models.ovsnet import build_ovsnet

    build = {**_parameters(build_maskrcnn), **_parameters(build_ovsnet)}
    return {
        "TrainerConfig": _parameters(pl.Trainer.__init__),
        "OVSNetModuleConfig": _parameters(OVSNetModule.__init__),
        "ModelBuildConfig": build,
        "DAVISDataConfig": _parameters(DAVISDataModule.__init__),
        "COCODataConfig": _parameters(COCODataModule.__init__),
    }


@pytest.mark.parametrize("name", sorted(build_schemas()))
def test_schema_follows_the_signature(name: str) -> None:
    """Same parameters, same defaults, and the plain scalar annotations kept exactly."""
    expected = _targets()[name]
    schema = build_schemas()[name]
    fields = {f.name: f for f in schema.__dataclass_fields__.values() if f.name != "_target_"}
    assert set(fields) == set(expected)
    for param_name, param in expected.items():
        field = fields[param_name]
        default = field.default_factory() if callable(field.default_factory) else field.default
        if param.default is inspect.Parameter.empty:
            assert default == MISSING
        else:
            assert default == (list(param.default) if isinstance(param.default, tuple) else param.default)
        if name == "ModelBuildConfig" and param_name in MODEL_CONFIG_WIDENED:
            assert field.type is MODEL_CONFIG_WIDENED[param_name]
        elif param.annotation in (int, float, bool, str, "int", "float", "bool", "str"):
            assert field.type is {"int": int, "float": float, "bool": bool, "str": str}.get(
                param.annotation, param.annotation
            )


def _annotation(source: str) -> Any:
    import ast

    return annotation_type(ast.parse(source, mode="eval").body)


def test_annotations_map_to_what_omegaconf_can_check() -> None:
    assert _annotation("int") is int
    assert _annotation("int | None") == typing.Optional[int]  # noqa: UP045
    assert _annotation("Optional[str]") == typing.Optional[str]  # noqa: UP045
    assert _annotation("str | os.PathLike | None") == typing.Optional[str]  # noqa: UP045
    assert _annotation("Sequence[int] | None") == typing.Optional[typing.List[int]]  # noqa: UP006, UP045
    assert _annotation("Mapping[str, Any] | None") == typing.Optional[typing.Dict[str, Any]]  # noqa: UP006, UP045
    assert _annotation("Literal['a', 'b']") is str
    for mixed in (
        "int | float",
        "Union[int, bool]",
        "Union[str, Accelerator]",
        "list[int] | str | int",
        "Foo",
    ):
        assert _annotation(mixed) is Any, mixed


def test_typed_config_instantiates_and_pickles(tmp_path: Path) -> None:
    """Lightning takes the typed trainer node with its callbacks/logger merged in; launchers can pickle it."""
    cfg = _compose("experiment=demo", f"paths.output_dir={tmp_path}", f"paths.root_dir={tmp_path}")
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[], logger=False)
    assert trainer.max_epochs == 1000 and trainer.check_val_every_n_epoch == 5
    assert trainer.gradient_clip_val == 10.0 and trainer.limit_val_batches == 4
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    assert datamodule.hparams.generate_synthetic["num_sequences"] == 16


def test_train_py_rejects_a_wrong_type_before_any_setup(tmp_path: Path) -> None:
    """The CLI answer: a non-zero exit within seconds (no torch or Lightning import), naming the key."""
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "trainer.max_steps=abc", f"hydra.run.dir={tmp_path}/out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - start
    assert result.returncode != 0
    assert "trainer.max_steps" in result.stderr and "abc" in result.stderr
    assert elapsed < 15, f"took {elapsed:.1f} s: the error should come at compose time"
    assert not (tmp_path / "out").exists()
