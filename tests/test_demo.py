"""``make demo`` end to end on a tiny budget: both training stages, one-pass evaluation, the files it promises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from ovsnet.demo import STAGES, run_demo

TINY_DEMO_TRAIN = [
    "data.generate_synthetic.num_sequences=4",
    "data.generate_synthetic.num_frames=5",
    "data.generate_synthetic.size=[64,80]",
    "data.num_workers=0",
    "data.persistent_workers=false",
    "model.model_config.min_size=64",
    "model.model_config.max_size=80",
    "trainer.max_steps=2",
    "trainer.check_val_every_n_epoch=1000",
]


@pytest.mark.slow
def test_demo_trains_both_stages_scores_and_writes_everything(tmp_path: Path, capsys) -> None:
    summary = run_demo(tmp_path, minutes=1.0, train_overrides=TINY_DEMO_TRAIN, eval_overrides=[])
    # stage 1 trains Mask R-CNN + Re-ID without MGA; stage 2 starts from it and adds MGA
    first, second = (tmp_path / stage / "checkpoints" / "last.ckpt" for stage, _, _ in STAGES)
    keys = [set(torch.load(p, map_location="cpu", weights_only=False)["state_dict"]) for p in (first, second)]
    assert not any(".mga." in k for k in keys[0]) and any(".mga." in k for k in keys[1])
    assert keys[0] <= keys[1]
    metrics = summary["metrics"]
    assert 0.0 <= metrics["J&F-Mean"] <= 1.0 and summary["num_frames"] > 0
    printed = capsys.readouterr().out
    # every row of the printed table carries its summary's J&F, and the gain line is their difference
    flow = summary["baselines"]["flow"]["J&F-Mean"]
    rows = {
        "OVS-Net": metrics["J&F-Mean"],
        "OVS-Net without MGA": summary["without_mga"]["J&F-Mean"],
        "OVS-Net without Re-ID": summary["without_reid"]["J&F-Mean"],
        "no network (flow + appearance memory)": summary["no_network"]["J&F-Mean"],
        "copy the first mask (no model)": summary["baselines"]["copy"]["J&F-Mean"],
        "optical-flow propagation (no model)": flow,
    }
    for label, value in rows.items():
        shown = re.search(rf"│ {re.escape(label)} +│ +([0-9.]+) ", printed)
        assert shown and float(shown.group(1)) == pytest.approx(value, abs=5e-4), (label, printed)
    assert f"OVS-Net minus flow propagation: {metrics['J&F-Mean'] - flow:+.3f} J&F" in printed
    # the flow path is the floor (README): the trained model and the no-network row do not lose to flow
    # propagation on the same videos, even after two training steps
    assert metrics["J&F-Mean"] >= flow - 0.02 and summary["no_network"]["J&F-Mean"] >= flow - 0.02
    assert sum(summary["path_counts"].values()) > 0
    results = Path(summary["results_dir"])
    sequences = [d for d in results.iterdir() if d.is_dir()]
    assert sequences and all(any(d.glob("*.png")) for d in sequences)
    assert (tmp_path / "evaluate" / "overlays.png").is_file()
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == len(sequences) and all(v.stat().st_size > 0 for v in videos)
    assert json.loads((tmp_path / "evaluate" / "summary.json").read_text())["metrics"] == metrics
    assert all(s in printed for s in ("J&F-Mean", "fps", "overlay videos", "contact sheet", "checkpoint"))
    assert 0.0 <= summary["without_mga"]["J&F-Mean"] <= 1.0
    assert 0.0 <= summary["without_reid"]["J&F-Mean"] <= 1.0
    assert (tmp_path / "evaluate_no_mga" / "summary.json").is_file()
    assert (tmp_path / "evaluate_no_reid" / "summary.json").is_file()
    # the same inference without the network, beside the trained model: what training bought
    no_network = json.loads((tmp_path / "evaluate_no_network" / "summary.json").read_text())
    assert no_network["network"] is False and summary["no_network"] == no_network["metrics"]
    assert no_network["path_counts"]["iou"] == no_network["path_counts"]["reid"] == 0
    assert "no network (flow + appearance memory)" in printed
    assert "without MGA" in printed and "without Re-ID" in printed
    # the model-free baselines on the same videos, printed beside the J&F
    baselines = summary["baselines"]
    assert set(baselines) == {"copy", "flow"} and all(0.0 <= b["J&F-Mean"] <= 1.0 for b in baselines.values())
    assert "optical-flow propagation" in printed and "copy the first mask" in printed
    assert "minus flow propagation" in printed
    # the checkpoint carries the demo's calibrated rho_reid: evaluate.py needs no override for it
    stored = torch.load(second, map_location="cpu", weights_only=False)["hyper_parameters"]
    assert stored["inference_settings"] == {"reid": {"rho": 1.5}}
    assert summary["inference"]["reid"]["rho"] == 1.5
