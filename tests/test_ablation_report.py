"""The ablation report (``bench/ablation.py``): tables, trend statements and the figure are computed from the
measured rows, so a sign flip in the data must flip the statement, and the best row must be the bold one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ablation() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ablation", ROOT / "bench" / "ablation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _summary(jf: float, reid: int = 0) -> dict:
    return {
        "metrics": {"J-Mean": jf + 0.01, "F-Mean": jf - 0.01, "J&F-Mean": jf},
        "path_fractions": {"iou": 1.0 - reid / 10, "reid": reid / 10, "flow": 0.0, "absent": 0.0},
        "fps": 5.0,
    }


def _tables(ablation: ModuleType, base: float, reid: float, mga: float) -> dict[str, list]:
    p = ablation.PAPER
    t3 = [ablation.row("OVS-Net (without Re-ID)", _summary(base), p["table3"]["without Re-ID"])]
    t3 += [
        ablation.row(f"ρ_reid = {r:.1f}", _summary(reid - abs(r - 2.3), reid=2), p["table3"][f"{r:.1f}"])
        for r in ablation.RHO_REID
    ]
    t4 = [ablation.row("OVS-Net (without MGA)", _summary(reid), p["table4"]["without MGA"])]
    t4 += [
        ablation.row(f"λ = {lam:.1f}", _summary(mga - abs(lam - 1.1)), p["table4"][f"{lam:.1f}"])
        for lam in ablation.LAMBDAS
    ]
    t5 = [
        ablation.row(f"ρ_iou = {r:.1f}", _summary(mga - abs(r - 0.2)), p["table5"][f"{r:.1f}"])
        for r in ablation.RHO_IOU
    ]
    t6 = [
        ablation.row("OVS-Net (base)", _summary(base), p["table6"]["base"]),
        ablation.row("+ Re-ID", _summary(reid), p["table6"]["+ Re-ID"]),
        ablation.row("+ MGA", _summary(mga), p["table6"]["+ MGA"]),
    ]
    return {"table3": t3, "table4": t4, "table5": t5, "table6": t6}


def test_markdown_table_bolds_the_best_row_and_shows_paths(ablation: ModuleType) -> None:
    table = ablation.markdown_table(_tables(ablation, 0.3, 0.4, 0.5)["table3"]).splitlines()
    assert len(table) == 2 + 1 + len(ablation.RHO_REID)
    best = [line for line in table if "**" in line]
    assert len(best) == 1 and best[0].startswith("| ρ_reid = 2.3 |") and "**40.0**" in best[0]
    assert "| 80 / 20 / 0 / 0 |" in best[0]  # path shares in percent
    assert table[2].endswith("| 53.1 | 56.7 | 54.9 |")  # the paper's J / F / G beside ours


def test_trend_notes_follow_the_numbers(ablation: ModuleType) -> None:
    agree = ablation.trend_notes(_tables(ablation, 0.3, 0.4, 0.5))
    assert "+10.0 points over no Re-ID" in agree[0] and "agrees in sign" in agree[0]
    assert "Best ρ_reid here: ρ_reid = 2.3" in agree[0]
    assert "Best λ here: λ = 1.1" in agree[1]
    assert "best ρ_iou here: ρ_iou = 0.2" in agree[2]
    assert "Re-ID agrees, MGA agrees" in agree[3]
    worse = ablation.trend_notes(_tables(ablation, 0.5, 0.4, 0.3))
    assert "-10.0 points over no Re-ID" in worse[0] and "does not agree in sign" in worse[0]
    assert "Re-ID does not agree, MGA does not agree" in worse[3]


def test_report_and_figure_are_written(ablation: ModuleType, tmp_path: Path) -> None:
    tables = _tables(ablation, 0.3, 0.4, 0.5)
    meta = {
        "command": "python bench/ablation.py",
        "date": "2026-12-02",
        "machine": "test",
        "minutes": 1.0,
        "train_minutes": 3.0,
        "data": "tiny",
        "image_size": "64×80",
        "steps": "3 + 2",
        "model": "a tiny test model",
        "seed": 1,
    }
    page, plot = tmp_path / "docs" / "ablations.md", tmp_path / "docs" / "ablations.png"
    ablation.figure(tables, plot)
    ablation.write_report(tables, meta, page, plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert "![ablations](ablations.png)" in text
    assert "3 min of training" in text
    assert all(title in text for title in ablation.TITLES.values())
    assert not list(tmp_path.glob("docs/*.tmp*"))  # written atomically


def test_reid_section_lists_low_thresholds_and_distance_percentiles(ablation: ModuleType) -> None:
    rows = [ablation.row(f"ρ_reid = {r:.1f}", _summary(0.4 + r / 10), None) for r in ablation.RHO_REID_LOW]
    distances = {
        "same object": [0.1, 0.2, 0.5, 0.7, 1.0],
        "different objects": [0.5, 1.2, 1.9, 2.2, 2.8],
        "embeddings": [42.0],
    }
    text = "\n".join(ablation.reid_section(rows, distances))
    assert "| ρ_reid = 1.5 | 56.0 | 54.0 | **55.0** |" in text  # the best low threshold is bold
    assert "| – | – | – |" in text  # no paper numbers for thresholds the paper did not try
    assert "42 detections" in text
    assert "| same object | 0.10 | 0.20 | 0.50 | 0.70 | 1.00 |" in text
    assert "| embeddings |" not in text


def test_table6_ends_with_the_default_cascade_and_the_baselines(ablation: ModuleType, tmp_path: Path) -> None:
    tables = _tables(ablation, 0.3, 0.4, 0.5)
    baselines = {"copy": {m: 0.1 for m in ablation.METRICS}, "flow": {m: 0.45 for m in ablation.METRICS}}
    tables["table6"] += [
        ablation.row(ablation.DEFAULT_LABEL, _summary(0.55), None),
        *ablation.baseline_rows({"baselines": baselines}),
    ]
    text = ablation.markdown_table(tables["table6"])
    assert f"| {ablation.BASELINE_LABELS['flow']} | 45.0 | 45.0 | 45.0 | – | – | – | – |" in text
    assert f"| {ablation.DEFAULT_LABEL} | 56.0 | 54.0 | **55.0** |" in text
    notes = ablation.trend_notes(tables)
    assert notes[-1] == (
        f"Against optical-flow propagation (45.0, no model): the best row ({ablation.DEFAULT_LABEL}) "
        "is +10.0 points; 16 of 20 rows are below it; the library default is +10.0."
    )
    ablation.figure(tables, tmp_path / "ablations.png")  # baselines drawn as lines, no paper value needed
    assert (tmp_path / "ablations.png").stat().st_size > 0
