"""evaluate.py / ovsnet.evaluation: results layout, official CSVs, summary, resume, ablations, sweeps, errors.

Every run composes the real ``conf/evaluate.yaml`` on a tiny synthetic DAVIS folder (3 val sequences x 5
frames at 64x80) with a tiny random-weight checkpoint saved like an OVSNetModule checkpoint.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig
from PIL import Image
from pytorch_lightning.loggers import CSVLogger

from ovsnet.cli import sweep_summary
from ovsnet.cli.sweep_summary import summarize_sweep
from ovsnet.data.davis import load_davis
from ovsnet.data.io import DataError, read_label_map
from ovsnet.evaluation import SUMMARY_FILE, run_evaluation
from ovsnet.evaluation import jobs as eval_jobs
from ovsnet.evaluation import model as eval_model
from ovsnet.evaluation.jobs import RUN_MARKER
from ovsnet.evaluation.settings import (
    explicit_inference_keys,
    make_flow,
    resolved_inference_settings,
)
from ovsnet.hydra_utils import compose_config
from ovsnet.inference.cascade import PATHS
from ovsnet.inference.flow import ZeroFlow, warp
from ovsnet.inference.settings import resolve
from ovsnet.metrics.davis import GLOBAL_COLUMNS, PER_SEQUENCE_COLUMNS, evaluate_folder
from ovsnet.models.checkpoint import CheckpointError
from ovsnet.utils import swept_keys
from tests.commands import subprocess_env
from tests.tiny_models import TINY_MODEL

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ovsnet.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("davis")
    return Path(
        generate_dataset(
            root, num_sequences=4, num_frames=5, size=(64, 80), seed=0, val_fraction=0.75, progress=False
        )
    )


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ovsnet.models.ovsnet import build_ovsnet

    torch.manual_seed(0)
    model = build_ovsnet(**TINY_MODEL)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {"model_config": TINY_MODEL},
        },
        path,
    )
    return path


def _overrides(out: Path, data_root: Path, ckpt: Path | str, data: str = "synthetic") -> list[str]:
    return [
        f"data={data}",
        f"data.root={data_root}",
        f"ckpt_path={ckpt}",
        "device=cpu",
        f"paths.root_dir={out}",
        f"paths.log_dir={out}/logs",
        f"paths.output_dir={out}",
        f"hydra.run.dir={out}",
        "logger=csv",
        "progress=false",
        "score_workers=0",
    ]


def compose_eval(
    out: Path, data_root: Path, ckpt: Path | str, *overrides: str, data: str = "synthetic"
) -> DictConfig:
    """The real evaluate.yaml with test paths, composed as for a run (``${hydra:...}`` resolvable)."""
    return compose_config("evaluate.yaml", [*_overrides(out, data_root, ckpt, data), *overrides])


def test_evaluation_writes_official_results_and_resumes(
    tmp_path: Path, data_root: Path, ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    cfg = compose_eval(out, data_root, ckpt)
    run_evaluation(cfg, loggers=[CSVLogger(str(out), name="csv")])
    sequences = load_davis(data_root, 2017, "val")
    assert len(sequences) == 3
    results = out / "results" / "val"
    for seq in sequences:
        names = sorted(p.stem for p in (results / seq.name).glob("*.png"))
        assert names == sorted(seq.frame_names) and len(names) == 5
        labels = read_label_map(results / seq.name / f"{seq.frame_names[-1]}.png")
        assert labels.shape == (64, 80) and labels.dtype == np.uint8
        np.testing.assert_array_equal(
            read_label_map(results / seq.name / f"{seq.frame_names[0]}.png"), seq.first_frame_mask
        )
    assert list(pd.read_csv(results / "global_results-val.csv").columns) == list(GLOBAL_COLUMNS)
    per_seq = pd.read_csv(results / "per-sequence_results-val.csv")
    assert list(per_seq.columns) == list(PER_SEQUENCE_COLUMNS)
    assert len(per_seq) == sum(len(s.object_ids) for s in sequences)
    per_object = pd.read_csv(out / "per-object_results-val.csv")
    assert list(per_object.columns) == ["Sequence", *GLOBAL_COLUMNS] and len(per_object) == len(per_seq)

    stored = json.loads((out / SUMMARY_FILE).read_text())
    assert stored["fps"] > 0 and stored["num_frames"] == 15 and stored["segmented_sequences"] == 3
    assert set(stored["path_counts"]) == set(PATHS)
    assert sum(stored["path_counts"].values()) == sum(4 * len(s.object_ids) for s in sequences)
    per_sequence = [s["detected_frames"] for s in stored["sequences"].values()]
    assert stored["detected_frames"] == sum(per_sequence) and all(0 <= d <= 4 for d in per_sequence)
    # the figures reported are the official scores of the masks written, over every sequence of the split
    assert stored["metrics"] == pytest.approx(evaluate_folder(data_root, results, workers=0).scores)
    assert stored["failed_sequences"] == {}
    assert stored["inference"]["reid"]["rho"] == 2.3 and stored["inference"]["name"] == "full"
    assert (out / "metrics.json").is_file() and (out / "overlays.png").is_file()
    logged = pd.read_csv(next((out / "csv").rglob("metrics.csv")))
    assert {"eval/J&F-Mean", "eval/fps", "eval/paths/iou"} <= set(logged.columns)

    # a re-run skips every finished sequence: no model is loaded and no result file is rewritten
    mtimes = {p: p.stat().st_mtime_ns for p in results.rglob("*.png")}
    monkeypatch.setattr(
        eval_jobs, "load_model_from_config", lambda *a, **k: pytest.fail("model loaded when resuming")
    )
    again = run_evaluation(cfg)
    assert again["skipped_sequences"] == 3 and again["segmented_sequences"] == 0
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*.png")} == mtimes
    assert again["metrics"]["J&F-Mean"] == pytest.approx(stored["metrics"]["J&F-Mean"])
    assert again["fps"] == pytest.approx(stored["fps"])
    # resuming into the same results with other settings would mix them: refused, naming what differs
    with pytest.raises(DataError, match="inference"):
        run_evaluation(compose_eval(out, data_root, ckpt, "inference.cascade.rho_iou=0.5"))


def test_failed_model_load_does_not_block_the_resume(tmp_path: Path, data_root: Path, ckpt: Path) -> None:
    """The run marker is written once the model has loaded: after a bad checkpoint, the same run directory
    takes the right one. A killed run's unfinished overlay sheet is removed when the next run starts."""
    out = tmp_path / "run"
    bad = tmp_path / "bad.ckpt"
    bad.write_text("not a checkpoint")
    small = ("max_sequences=1", "baselines=[]")
    with pytest.raises(CheckpointError, match=r"bad\.ckpt"):
        run_evaluation(compose_eval(out, data_root, bad, *small))
    assert not (out / "results" / "val" / RUN_MARKER).exists()
    out.mkdir(parents=True, exist_ok=True)
    stale = out / ".overlays.k1ll3d.png"
    stale.write_bytes(b"half a png")
    summary = run_evaluation(compose_eval(out, data_root, ckpt, *small))
    assert summary["segmented_sequences"] == 1 and (out / "results" / "val" / RUN_MARKER).is_file()
    assert not stale.exists() and (out / "overlays.png").is_file()


def test_a_corrupt_frame_fails_its_sequence_only(
    tmp_path: Path, data_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """on_error=skip (default): the broken video is logged with its file and listed in summary.json, the others
    are segmented and scored, and the run ends with an error saying how to resume; on_error=stop stops there."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(data_root, broken)
    first, *others = load_davis(broken, 2017, "val")
    frame = first.frame_paths[2]
    frame.write_bytes(frame.read_bytes()[:200])
    out = tmp_path / "skip"
    small = ("network=false", "media.enabled=false", "baselines=[copy]")
    with caplog.at_level("ERROR", logger="ovsnet.evaluation.jobs"):
        with pytest.raises(eval_jobs.IncompleteEvaluation, match=rf"1 of 3 .*{frame.name}.*hydra\.run\.dir="):
            run_evaluation(compose_eval(out, broken, "null", *small))
    assert any(frame.name in r.getMessage() and first.name in r.getMessage() for r in caplog.records)
    stored = json.loads((out / SUMMARY_FILE).read_text())
    assert (
        list(stored["failed_sequences"]) == [first.name]
        and frame.name in stored["failed_sequences"][first.name]
    )
    assert sorted(stored["sequences"]) == sorted(s.name for s in others) and stored["metrics"]
    results = out / "results" / "val"
    assert stored["metrics"] == pytest.approx(
        evaluate_folder(broken, results, sequences=[s.name for s in others], workers=0).scores
    )
    assert set(
        pd.read_csv(results / "per-sequence_results-val.csv")["Sequence"].str.rsplit("_", n=1).str[0]
    ) == {s.name for s in others}
    with pytest.raises(DataError, match=rf"{first.name}.*{frame.name}.*on_error=stop.*hydra\.run\.dir="):
        run_evaluation(compose_eval(tmp_path / "stop", broken, "null", *small, "on_error=stop"))
    assert not (tmp_path / "stop" / "results" / "val" / others[0].name).exists()
    with pytest.raises(DataError, match="on_error='later'"):
        run_evaluation(compose_eval(tmp_path / "bad", broken, "null", *small, "on_error=later"))


@pytest.mark.parametrize(
    ("preset", "flags"),
    [
        ("no_reid", {"reid": False, "mga": True, "flow": True}),
        ("no_mga", {"reid": True, "mga": False, "flow": True}),
        ("no_flow", {"reid": True, "mga": True, "flow": False}),
        ("base", {"reid": False, "mga": False, "flow": True}),
    ],
)
def test_ablation_presets(tmp_path: Path, data_root: Path, ckpt: Path, preset: str, flags: dict) -> None:
    cfg = compose_eval(
        tmp_path, data_root, ckpt, f"inference={preset}", "max_sequences=1", "media.enabled=false"
    )
    summary = run_evaluation(cfg)
    assert summary["num_sequences"] == 1 and summary["inference"]["name"] == preset
    inference = summary["inference"]
    on = {"reid": inference["reid"]["enabled"], "mga": inference["mga"]["enabled"]}
    assert {**on, "flow": inference["cascade"]["use_flow"]} == flags
    if not flags["reid"]:
        assert summary["path_counts"]["reid"] == 0
    if not flags["flow"]:
        assert summary["path_counts"]["flow"] == 0 and summary["inference"]["flow"]["_target_"].endswith(
            "ZeroFlow"
        )
    # the row is the official score of this preset's own masks, one table row per object
    results = tmp_path / "results" / "val"
    official = evaluate_folder(data_root, results, sequences=list(summary["sequences"]), workers=0)
    assert summary["metrics"] == pytest.approx(official.scores)
    assert len(pd.read_csv(results / "per-sequence_results-val.csv")) == len(official.per_object) > 0


def test_model_sources(tmp_path: Path, data_root: Path, ckpt: Path) -> None:
    """``model_overrides`` updates the checkpoint's build kwargs; ``random_init`` needs no checkpoint."""
    small = "media.enabled=false", "max_sequences=1", "score=false"
    cfg = compose_eval(tmp_path / "a", data_root, ckpt, "model_overrides={box_detections_per_img:3}", *small)
    assert run_evaluation(cfg)["num_frames"] == 5
    assert (
        eval_model.cached_model(
            ckpt, model_overrides={"box_detections_per_img": 3}
        ).detector.roi_heads.detections_per_img
        == 3
    )
    tiny = "{" + ",".join(f"{k}:{'null' if v is None else v}" for k, v in TINY_MODEL.items()) + "}"
    cfg = compose_eval(tmp_path / "b", data_root, "null", "random_init=true", f"model_config={tiny}", *small)
    summary = run_evaluation(cfg)
    assert summary["num_frames"] == 5 and summary["metrics"] == {}


def test_checkpoint_inference_settings_apply_unless_overridden(
    tmp_path: Path, data_root: Path, ckpt: Path
) -> None:
    """A checkpoint's calibrated rho_reid (stored under the old flat name) is used by evaluate.py; a
    command-line ``inference.reid.rho=...`` still wins. The summary shows the baselines beside the J&F."""
    calibrated = tmp_path / "calibrated.ckpt"
    stored = torch.load(ckpt, map_location="cpu", weights_only=False)
    stored["hyper_parameters"]["inference_settings"] = {"rho_reid": 0.7}
    torch.save(stored, calibrated)
    small = ("media.enabled=false", "max_sequences=1")
    summary = run_evaluation(compose_eval(tmp_path / "a", data_root, calibrated, *small))
    assert summary["inference"]["reid"]["rho"] == 0.7
    assert set(summary["baselines"]) == {"copy", "flow"}
    assert all(0.0 <= b["J&F-Mean"] <= 1.0 for b in summary["baselines"].values())
    assert (tmp_path / "a" / "baselines").is_dir()
    cfg = compose_eval(
        tmp_path / "b", data_root, calibrated, "inference.reid.rho=1.9", "baselines=[]", *small
    )
    summary = run_evaluation(cfg)
    assert summary["inference"]["reid"]["rho"] == 1.9 and summary["baselines"] == {}
    # preset < stored < the user's keys
    preset = {"reid": {"rho": 2.3}, "cascade": {"rho_iou": 0.4}}
    assert resolve(preset, {"rho_reid": 0.7}, {"reid.rho": 2.3}).reid.rho == 2.3
    assert resolve(preset, {"rho_reid": 0.7}).reid.rho == 0.7
    assert resolve(preset, {"reid": {"rho": 0.7}}).cascade.rho_iou == 0.4
    assert explicit_inference_keys(["inference.reid.rho=1.9", "+inference.flow.scale=0.5", "seed=1"]) == {
        "reid.rho",
        "flow.scale",
    }
    with pytest.raises(DataError, match="baselines"):
        run_evaluation(compose_eval(tmp_path / "c", data_root, calibrated, "baselines=[oracle]", *small))


def test_zero_flow_leaves_masks_unwarped() -> None:
    estimator = make_flow({"_target_": "ovsnet.inference.flow.ZeroFlow"})
    assert isinstance(estimator, ZeroFlow)
    frame = np.zeros((6, 7, 3), np.uint8)
    flow = estimator(frame, frame)
    assert flow.shape == (6, 7, 2) and flow.dtype == np.float32 and not flow.any()
    masks = (np.random.default_rng(0).random((2, 6, 7)) > 0.5).astype(np.float32)
    np.testing.assert_allclose(warp(masks, flow), masks)
    with pytest.raises(ValueError, match="rho_typo"):
        resolve({"reid": {"rho_typo": 1.0}})
    with pytest.raises(ValueError, match="rho_typo"):  # a checkpoint's stored settings are checked too
        resolve({}, {"rho_typo": 1.0})


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("inference.reid.rho=abc", "reid.rho"),
        ("inference.reid.rho_typo=1", "rho_typo"),
        ("inference.mga.enabled=maybe", "mga.enabled"),
    ],
)
def test_inference_values_are_typed_at_compose_time(
    tmp_path: Path, data_root: Path, override: str, key: str
) -> None:
    """The inference presets extend the InferenceConfig schema: a wrong type or key fails naming the key."""
    with pytest.raises(ConfigCompositionException) as info:
        compose_eval(tmp_path, data_root, "x.ckpt", override)
    assert key in f"{info.value} {info.value.__cause__}"


def test_an_old_flat_inference_key_names_its_new_key(tmp_path: Path, data_root: Path) -> None:
    """``inference.rho_reid=2.0`` (the name before the settings had sections) fails with the new key."""
    cfg = compose_eval(tmp_path, data_root, "x.ckpt", "inference.rho_reid=2.0")
    with pytest.raises(
        DataError, match=r"inference\.rho_reid was renamed inference\.reid\.rho.*reid\.rho=2\.0"
    ):
        resolved_inference_settings(cfg)
    cfg = compose_eval(tmp_path, data_root, "x.ckpt", "inference.reid.rho=2.0")
    assert resolved_inference_settings(cfg).reid.rho == 2.0


def test_inference_sweep_in_process_and_summary(tmp_path: Path, data_root: Path, ckpt: Path) -> None:
    sweep = tmp_path / "multirun"
    for job, rho in enumerate((0.2, 0.4)):
        cfg = compose_eval(
            sweep / str(job),
            data_root,
            ckpt,
            f"inference.cascade.rho_iou={rho}",
            "max_sequences=2",
            "media.enabled=false",
        )
        run_evaluation(cfg)
    table = summarize_sweep(sweep, "inference.cascade.rho_iou")
    assert list(table["inference.cascade.rho_iou"]) == [0.2, 0.4]
    assert list(table["Methods"]) == ["OVS-Net (ρ_iou = 0.2)", "OVS-Net (ρ_iou = 0.4)"]
    assert table[["J-Mean", "F-Mean", "J&F-Mean"]].notna().all().all()
    md = (sweep / "sweep_inference.cascade.rho_iou.md").read_text()
    assert "| Methods | J-Mean | F-Mean | J&F-Mean |" in md and "**" in md
    assert len(pd.read_csv(sweep / "sweep_inference.cascade.rho_iou.csv")) == 2
    assert (sweep / "sweep_inference.cascade.rho_iou.png").stat().st_size > 0


def test_swept_keys_and_summary_errors(tmp_path: Path) -> None:
    keys = swept_keys(["inference.reid.rho=2.1,2.2", "data=davis17", "inference=no_reid,base", "seed=1"])
    assert keys == ["inference.reid.rho", "inference"]
    with pytest.raises(FileNotFoundError, match="no summary.json"):
        summarize_sweep(tmp_path)
    assert sweep_summary.main(["summarize", str(tmp_path), "--key", "inference.cascade.rho_iou"]) == 2


@pytest.mark.slow
def test_multirun_subprocess_writes_sweep_table(tmp_path: Path, data_root: Path, ckpt: Path) -> None:
    """``python evaluate.py -m inference.reid.rho=2.2,2.4``: one checkpoint, two jobs, then the Hydra
    callback's table and plot; ``python -m ovsnet.cli.sweep_summary summarize`` reproduces the table."""
    sweep = tmp_path / "multirun"
    overrides = [
        o
        for o in _overrides(tmp_path / "unused", data_root, ckpt)
        if not o.startswith(("paths.output_dir", "hydra.run.dir"))
    ]
    env = subprocess_env()
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "evaluate.py"),
            "-m",
            *overrides,
            f"hydra.sweep.dir={sweep}",
            "inference.reid.rho=2.2,2.4",
            "max_sequences=1",
            "media.enabled=false",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for job in ("0", "1"):
        summary = json.loads((sweep / job / SUMMARY_FILE).read_text())
        assert summary["num_sequences"] == 1 and (sweep / job / "results" / "val").is_dir()
        assert any(o.startswith("inference.reid.rho=") for o in summary["overrides"])
    assert "reusing the loaded model" in (sweep / "1" / "evaluate.log").read_text()  # one checkpoint load
    table = pd.read_csv(sweep / "sweep_inference.reid.rho.csv")
    assert list(table["inference.reid.rho"]) == [2.2, 2.4]
    assert (sweep / "sweep_inference.reid.rho.md").is_file()
    assert (sweep / "sweep_inference.reid.rho.png").is_file()
    assert (
        sweep_summary.main(["summarize", str(sweep), "--out", str(tmp_path / "again")]) == 0
    )  # key detected
    assert (tmp_path / "again" / "sweep_inference.reid.rho.md").read_text() == (
        sweep / "sweep_inference.reid.rho.md"
    ).read_text()


def test_missing_checkpoint_and_data_root_are_named(tmp_path: Path, data_root: Path, ckpt: Path) -> None:
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(CheckpointError, match=r"ckpt_path=.*nope\.ckpt"):
        run_evaluation(compose_eval(tmp_path, data_root, missing))
    with pytest.raises(DataError, match="ckpt_path is required"):
        run_evaluation(compose_eval(tmp_path, data_root, "null"))
    with pytest.raises(DataError, match=r"data\.root=.*no_such_dir"):
        run_evaluation(compose_eval(tmp_path, tmp_path / "no_such_dir", ckpt, "data.generate_synthetic=null"))
    with pytest.raises(DataError, match="segtrack_missing"):
        run_evaluation(
            compose_eval(
                tmp_path, data_root, ckpt, f"data.eval_root={tmp_path}/segtrack_missing", data="segtrackv2"
            )
        )


def cfg_video(seq: Any) -> str:
    return f"video={seq.frame_paths[0].parent}"


def test_video_task(tmp_path: Path, data_root: Path, ckpt: Path) -> None:
    """``task=video``: a frame folder and its first mask through ``inference.video.segment_video``; the video
    and the mask are checked before the checkpoint is read."""
    from evaluate import evaluate

    seq = load_davis(data_root, 2017, "val")[0]
    cfg = compose_eval(
        tmp_path,
        data_root,
        ckpt,
        "task=video",
        f"video={seq.frame_paths[0].parent}",
        f"first_mask={seq.annotation_paths[0]}",
        "overlay=false",
    )
    summary = evaluate(cfg)
    assert summary["num_frames"] == 5 and summary["task"] == "video"
    assert len(list((tmp_path / "video").rglob("*.png"))) >= 5
    small_mask = tmp_path / "small.png"
    Image.fromarray(np.ones((8, 8), np.uint8)).save(small_mask)
    missing_ckpt = tmp_path / "never_read.ckpt"  # the inputs fail first, naming the file
    for bad_inputs, message in (
        ((cfg_video(seq), f"first_mask={small_mask}"), "small.png"),
        ((f"video={tmp_path / 'missing.mp4'}", f"first_mask={small_mask}"), "missing.mp4"),
    ):
        with pytest.raises(DataError, match=message):
            evaluate(compose_eval(tmp_path, data_root, missing_ckpt, "task=video", *bad_inputs))


def test_every_inference_preset_builds_its_cascade_and_flow(tmp_path: Path, data_root: Path) -> None:
    """Each conf/inference option builds; ``paper`` is the paper's rules, the default keeps the guards."""
    from ovsnet.inference.flow import DISFlow, FarnebackFlow

    presets = sorted(p.stem for p in (CONF_DIR / "inference").glob("*.yaml"))
    assert {"default", "paper", "fast", "no_mga", "no_reid", "no_flow", "base"} <= set(presets)
    built = {}
    for name in presets:
        cfg = compose_eval(tmp_path, data_root, "x.ckpt", f"inference={name}")
        built[name] = (resolve(cfg.inference), make_flow(cfg.inference.flow))
    assert isinstance(built["no_flow"][1], ZeroFlow) and not built["no_flow"][0].cascade.use_flow
    paper = built["paper"][0]
    assert paper.cascade.switch_iou == 0 and not paper.cascade.iou_reid_check and not paper.reid.lost_only
    assert (
        paper.cascade.max_flow_streak == 10 and paper.mga.min_iou == 0 and paper.appearance.backbone is None
    )
    default, flow = built["default"]
    assert default == resolve()  # default.yaml states no value: the defaults are InferenceSettings'
    assert default.cascade.switch_iou > 0 and default.cascade.iou_reid_check
    assert default.cascade.max_flow_streak is None
    assert isinstance(flow, DISFlow) and flow.preset == "medium" and flow.max_height == 240
    fast = built["fast"][1]
    assert isinstance(fast, DISFlow) and fast.preset == "ultrafast" and fast.scale == 0.5
    cfg = compose_eval(tmp_path, data_root, "x.ckpt", "inference=no_mga", "inference/flow=farneback")
    assert isinstance(make_flow(cfg.inference.flow), FarnebackFlow) and not resolve(cfg.inference).mga.enabled


def test_one_line_errors_helper(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """DataError → one line and exit code 2; Ctrl-C → one line saying how to resume, exit code 130;
    HYDRA_FULL_ERROR=1 keeps the traceback."""
    from ovsnet.errors import one_line_errors

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as info, one_line_errors("evaluate.py", "rerun it to resume"):
        raise KeyboardInterrupt
    assert info.value.code == 130
    assert capsys.readouterr().err.strip() == "evaluate.py: interrupted; rerun it to resume"
    with pytest.raises(SystemExit) as info, one_line_errors("evaluate.py"):
        raise DataError("frame /data/00003.jpg is truncated")
    assert info.value.code == 2
    assert capsys.readouterr().err == "evaluate.py: error: frame /data/00003.jpg is truncated\n"
    with pytest.raises(ValueError, match="a bug"), one_line_errors("evaluate.py"):
        raise ValueError("a bug keeps its traceback")
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(DataError), one_line_errors("evaluate.py"):
        raise DataError("shown in full")


@pytest.mark.slow
def test_evaluate_py_reports_bad_input_in_one_line(tmp_path: Path, data_root: Path, ckpt: Path) -> None:
    """evaluate.py: a missing checkpoint, an unknown sequence, a truncated frame and a missing video each end
    with exit code 2 and one line naming the file or value (no Hydra traceback)."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(data_root, broken)
    seq = load_davis(broken, 2017, "val")[0]
    frame = seq.frame_paths[2]
    frame.write_bytes(frame.read_bytes()[:200])
    env = subprocess_env()
    env.pop("HYDRA_FULL_ERROR", None)
    cases = [
        ((f"ckpt_path={tmp_path / 'nope.ckpt'}",), "nope.ckpt"),
        (("sequences=[no_such_video]",), "no_such_video"),
        ((f"data.root={broken}", f"sequences=[{seq.name}]", "baselines=[]"), frame.name),
        (
            ("task=video", f"video={tmp_path / 'clip.mp4'}", f"first_mask={seq.annotation_paths[0]}"),
            "clip.mp4",
        ),
    ]
    for extra, named in cases:
        proc = subprocess.run(
            [
                sys.executable,
                str(ROOT / "evaluate.py"),
                *_overrides(tmp_path / "run", data_root, ckpt),
                *extra,
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 2, (extra, proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        errors = [line for line in proc.stderr.splitlines() if line.startswith("evaluate.py: error:")]
        assert len(errors) == 1 and named in errors[0], (extra, proc.stderr[-3000:])


def test_network_false_needs_no_checkpoint_and_runs_no_network(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``network=false``: flow and the appearance memory alone, no checkpoint read, only Flow/absent paths;
    the row equals flow propagation when appearance is off too (nothing else changes a mask)."""
    monkeypatch.setattr(
        eval_jobs,
        "load_model_from_config",
        lambda *a, **k: pytest.fail("a model was loaded with network=false"),
    )
    cfg = compose_eval(tmp_path / "a", data_root, "null", "network=false", "media.enabled=false")
    summary = run_evaluation(cfg)
    assert summary["network"] is False and summary["ckpt_path"] is None
    assert (
        summary["inference"]["mga"]["enabled"] is False and summary["inference"]["reid"]["enabled"] is False
    )
    assert summary["path_counts"]["iou"] == summary["path_counts"]["reid"] == 0
    assert summary["path_counts"]["flow"] > 0
    flow = summary["baselines"]["flow"]["J&F-Mean"]
    assert (
        summary["metrics"]["J&F-Mean"] >= flow - 0.02
    )  # the appearance memory never loses to propagation here
    plain = run_evaluation(
        compose_eval(
            tmp_path / "b",
            data_root,
            "null",
            "network=false",
            "media.enabled=false",
            "inference.appearance.backbone=null",
        )
    )
    assert plain["metrics"]["J&F-Mean"] == pytest.approx(flow, abs=1e-6)
    stored = json.loads((tmp_path / "b" / SUMMARY_FILE).read_text())
    assert stored["lost_while_visible"]["visible_object_frames"] > 0
    assert {"lost_while_visible", "path_counts"} <= set(next(iter(stored["sequences"].values())))


def test_wandb_is_opt_in_for_evaluate_as_for_train(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A plain ``evaluate.py`` run logs to CSV only (no wandb/ folder, no W&B output), as ``train.py`` does;
    ``logger=wandb`` turns W&B on for either."""
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    for config in ("evaluate.yaml", "train.yaml"):
        assert set(compose_config(config, []).logger) == {"csv"}, config
        assert set(compose_config(config, ["logger=wandb"]).logger) == {"wandb"}, config
    assert compose_config("evaluate.yaml", ["logger=wandb"]).logger.wandb.job_type == "evaluate"
