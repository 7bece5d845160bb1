"""``make davis16`` on a tiny generated DAVIS 2016 folder: three stages, the held-out rows, resume, adapt-to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ovsnet.cli import davis16
from tests.davis_fixtures import write_davis_sequence, write_split

TINY_TRAIN = [
    "data.holdout=[held]",
    "data.num_workers=0",
    "data.persistent_workers=false",
    "data.lucid_samples_per_frame=1",
    "data.frames_per_video=2",
    "data.videos_per_batch=2",
    "model.model_config.min_size=64",
    "model.model_config.max_size=80",
    "trainer.max_steps=1",
    "trainer.limit_val_batches=1",
]
TINY_EVAL = ["progress=false", "score_workers=0"]


def _davis2016(root: Path, names: list[str], resolution: str = "240p") -> Path:
    for name in names:
        write_davis_sequence(root, name, 4, 1, resolution, binary_png=True)
    write_split(root, "2016", "train", names)
    return root


@pytest.mark.slow
def test_davis16_trains_three_stages_and_scores_the_held_out_videos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    davis = _davis2016(tmp_path / "davis", ["a", "b", "held"])
    target = tmp_path / "target"
    write_davis_sequence(target, "new", 4, 1, "480p", annotated=[0])  # a test-dev-like folder
    write_split(target, "2017", "val", ["new"])
    out = tmp_path / "out"
    rows = davis16.run_davis16(out, davis, 0.5, target, TINY_TRAIN, TINY_EVAL)

    # the paper's chain: Mask R-CNN alone, then + Re-ID and MGA, then per-dataset fine-tuning from it
    ckpts = [out / stage / "checkpoints" / "last.ckpt" for stage, _, _ in davis16.STAGES]
    keys = [set(torch.load(p, map_location="cpu", weights_only=False)["state_dict"]) for p in ckpts]
    assert not any(".mga." in k or ".reid" in k for k in keys[0])
    assert any(".mga." in k for k in keys[1]) and keys[1] == keys[2]
    adapt = torch.load(ckpts[2], map_location="cpu", weights_only=False)["hyper_parameters"]
    assert adapt["model_config"]["mga"] is True
    assert all((out / stage / ".done").is_file() for stage, _, _ in davis16.STAGES)

    # every row scores the held-out video only, beside the same baselines
    assert list(rows) == [label for label, _, _ in davis16.EVALUATIONS]
    for summary in rows.values():
        assert summary["num_sequences"] == 1 and list(summary["sequences"]) == ["held"]
        assert set(summary["baselines"]) == {"copy", "flow"}
        assert summary["lost_while_visible"]["visible_object_frames"] == 3
    none = rows["no network (flow + appearance memory)"]
    assert none["network"] is False and none["path_counts"]["iou"] == none["path_counts"]["reid"] == 0
    assert rows["OVS-Net without MGA"]["inference"]["mga"]["enabled"] is False
    assert rows["OVS-Net without Re-ID"]["inference"]["reid"]["enabled"] is False

    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.strip()]
    final = out / "davis16.ckpt"  # the last stage's weights with the rho_reid calibrated on training videos
    assert lines[-1] == f"checkpoint {final}"
    stored = torch.load(final, map_location="cpu", weights_only=False)["hyper_parameters"][
        "inference_settings"
    ]
    calibrated = json.loads((out / "calibration.json").read_text())["rho_reid"]
    stored_rho = stored.get("reid", {}).get("rho")
    assert stored_rho == (None if calibrated is None else round(calibrated, 4))
    if calibrated is not None:  # a one-step detector may find nothing to measure
        assert rows["OVS-Net (trained here)"]["inference"]["reid"]["rho"] == stored_rho
    assert "python evaluate.py data=davis16" in printed and "sequences=[held]" in printed, printed[-3000:]
    assert f"data.root={target}" in printed and "data=davis17" in printed  # the adapted videos' command
    for label in ("no network", "optical-flow propagation", "copy the first mask", "lost while visible"):
        assert label in printed

    # a second run resumes: every stage is done, nothing is trained or calibrated again
    stamps = [p.stat().st_mtime_ns for p in (ckpts[2], final)]
    davis16.run_davis16(out, davis, 0.5, target, TINY_TRAIN, TINY_EVAL)
    assert [p.stat().st_mtime_ns for p in (ckpts[2], final)] == stamps
    assert "done before" in capsys.readouterr().out


def test_holdout_comes_from_the_experiment_config(tmp_path: Path) -> None:
    names = davis16.holdout_videos(tmp_path)
    assert len(names) == 6 and len(set(names)) == 6
    assert davis16.holdout_videos(tmp_path, ["data.holdout=[x,y]"]) == ["x", "y"]
    davis = _davis2016(tmp_path / "davis", ["x", "y"], "480p")
    overrides = davis16.data_overrides(davis, ["x"])
    assert "data.resolution=480p" in overrides and "sequences=[x]" in overrides


def test_cli_names_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        davis16.main(["--davis", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    assert "nowhere" in capsys.readouterr().err
