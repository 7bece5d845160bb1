"""Sweep tables of ``evaluate.py`` multiruns: ``sweep_<key>.{md,csv,png}``, paper style.

:func:`summarize_sweep` turns the run directories of a Hydra multirun into the paper-style table (markdown
+ CSV) and a plot of J / F / J&F against the swept value. It runs as a Hydra callback at the end of a
multirun (:class:`SweepSummaryCallback`, ``conf/evaluate.yaml``'s ``hydra.callbacks.sweep_summary``) and
from the shell: ``python -m ovsnet.cli.sweep_summary summarize DIR --key inference.reid.rho``.

A ``train.py`` multirun ends with ``sweep_summary.{csv,md}`` (:class:`TrainSweepSummaryCallback`,
``conf/train.yaml``'s ``hydra.callbacks.train_sweep_summary``): each job's status and optimized metric, read
from the ``train_result.json`` every job writes.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ovsnet.data.io import atomic_path
from ovsnet.evaluation import SUMMARY_FILE
from ovsnet.inference.cascade import PATHS
from ovsnet.training import RESULT_FILE
from ovsnet.utils import plain, swept_keys

__all__ = [
    "SWEEP_SUMMARY",
    "SweepSummaryCallback",
    "TrainSweepSummaryCallback",
    "main",
    "summarize_sweep",
    "summarize_train_sweep",
]

log = logging.getLogger(__name__)

_PAPER_COLUMNS = ("J-Mean", "F-Mean", "J&F-Mean")
_PRESET_LABELS = {
    "full": "OVS-Net",
    "default": "OVS-Net",
    "no_reid": "OVS-Net (without Re-ID)",
    "no_mga": "OVS-Net (without MGA)",
    "no_flow": "OVS-Net (without flow)",
    "base": "OVS-Net (base)",
    "paper": "OVS-Net (the paper's cascade rules)",
    "fast": "OVS-Net (fast flow)",
}
_SYMBOLS = {
    "reid.rho": "ρ_reid",
    "cascade.rho_iou": "ρ_iou",
    "reid.fraction": "reid fraction",
    "lambda_refine": "λ",
}


def _strip_key(key: str) -> str:
    return key.lstrip("+~")


def _override_values(overrides: Sequence[str]) -> dict[str, str]:
    """``{key: value as written}`` of one job's overrides (a deletion ``~key`` has no value)."""
    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    return {_strip_key(o.key_or_group): o.get_value_element_as_str() for o in parsed if not o.is_delete()}


def _number(value: Any) -> Any:
    if isinstance(value, (int, float)) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _value_of(summary: Mapping[str, Any], key: str) -> Any:
    overrides = _override_values(summary.get("overrides") or [])
    if key in overrides:
        return _number(overrides[key])
    config = summary.get("config") or {}
    value = OmegaConf.select(OmegaConf.create(config), key, default=None) if config else None
    if isinstance(value, DictConfig) and "name" in value:
        value = value.name  # a config group (e.g. inference): its preset name
    return _number(plain(value))


def _method_label(key: str, value: Any) -> str:
    leaf = key.split(".")[-1]
    if key == "inference" or leaf == "name":
        return _PRESET_LABELS.get(str(value), f"OVS-Net ({value})")
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    symbol = _SYMBOLS.get(key.removeprefix("inference."), _SYMBOLS.get(leaf, leaf))
    return f"OVS-Net ({symbol} = {shown})"


def _read_runs(multirun_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """``(run dir, summary)`` of every dataset run below ``multirun_dir`` (video-task runs are skipped)."""
    runs = []
    for path in sorted(multirun_dir.rglob(SUMMARY_FILE)):
        try:
            summary = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            log.warning("unreadable %s; left out of the sweep summary", path)
            continue
        if isinstance(summary, dict) and summary.get("task") == "dataset":
            runs.append((path.parent, summary))
    return runs


def _markdown(table: pd.DataFrame, columns: Sequence[str], best: Sequence[str]) -> str:
    """A GitHub markdown table; metric columns ×100 with one decimal, the best in bold (paper style)."""
    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join(":---" if c == "Methods" else "---:" for c in columns) + "|"
    maxima = {c: table[c].max() for c in best if c in table and table[c].notna().any()}
    lines = [header, rule]
    for _, row in table.iterrows():
        cells = []
        for c in columns:
            v = row[c]
            if c in _PAPER_COLUMNS:
                text = "–" if pd.isna(v) else f"{100.0 * v:.1f}"
                cells.append(f"**{text}**" if c in maxima and v == maxima[c] else text)
            elif isinstance(v, float):
                cells.append(f"{v:.3g}" if not c.endswith("%") else f"{v:.1f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summarize_sweep(
    multirun_dir: str | os.PathLike, swept_key: str | None = None, out_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """The paper-style table of a multirun: one row per run (``summary.json``), sorted by the swept value.

    Columns: the swept key, ``Methods`` (paper-style label), ``J-Mean``, ``F-Mean``, ``J&F-Mean`` (the paper's
    G-mean), ``fps``, per-path percentages and the run directory. Writes ``sweep_<key>.csv`` (raw values in
    [0, 1]), ``sweep_<key>.md`` (×100, best in bold) and ``sweep_<key>.png`` (J/F/J&F against numeric
    values; bars per run otherwise) into ``out_dir`` (default: the multirun directory).
    """
    root = Path(multirun_dir)
    runs = _read_runs(root)
    if not runs:
        raise FileNotFoundError(
            f"{root}: no {SUMMARY_FILE} in any run directory (is it a multirun of evaluate.py?)"
        )
    if swept_key is None:
        values = [_override_values(s.get("overrides") or []) for _, s in runs]
        varying = sorted({k for v in values for k in v if len({str(x.get(k)) for x in values}) > 1})
        if len(varying) != 1:
            raise ValueError(
                f"{root}: cannot tell the swept key ({varying or 'no override varies'}); pass --key"
            )
        swept_key = varying[0]
    rows = []
    for run_dir, s in runs:
        value = _value_of(s, swept_key)
        metrics = s.get("metrics") or {}
        row = {swept_key: value, "Methods": _method_label(swept_key, value)}
        row.update({c: metrics.get(c, float("nan")) for c in _PAPER_COLUMNS})
        row["fps"] = s.get("fps", float("nan"))
        row.update({f"{p} %": 100.0 * float((s.get("path_fractions") or {}).get(p, 0.0)) for p in PATHS})
        row["run_dir"] = os.path.relpath(run_dir, root)
        rows.append(row)
    table = pd.DataFrame(rows)
    numeric = all(isinstance(v, (int, float)) for v in table[swept_key])
    table = table.sort_values(swept_key if numeric else "run_dir").reset_index(drop=True)
    out = Path(out_dir) if out_dir is not None else root
    stem = "sweep_" + swept_key.replace("/", "_")
    with atomic_path(out / f"{stem}.csv") as tmp:
        table.to_csv(tmp, index=False)
    columns = ["Methods", *_PAPER_COLUMNS, "fps", *[f"{p} %" for p in PATHS]]
    with atomic_path(out / f"{stem}.md") as tmp:
        tmp.write_text(_markdown(table, columns, _PAPER_COLUMNS))
    from ovsnet.viz import ablation_bar_plot, sweep_plot

    plot = out / f"{stem}.png"
    if table[list(_PAPER_COLUMNS)].notna().any().any():
        if numeric:
            sweep_plot(table, swept_key, plot, title=f"{swept_key} sweep ({len(table)} runs)")
        else:
            ablation_bar_plot(table, "Methods", plot, title=f"{swept_key} ({len(table)} runs)")
    else:
        log.warning("%s: no run has scores; no plot written", root)
    log.info(
        "sweep over %s (%d runs): %s, %s, %s",
        swept_key,
        len(table),
        out / f"{stem}.md",
        out / f"{stem}.csv",
        plot,
    )
    return table


class SweepSummaryCallback(Callback):
    """Hydra callback: after a multirun of ``evaluate.py``, write the sweep table(s) and plot(s).

    ``key`` names the swept config key; by default every key swept on the command line gets its summary.
    """

    def __init__(self, key: str | None = None) -> None:
        self.key = key

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        keys = [self.key] if self.key else swept_keys(list(config.hydra.overrides.task))
        if not keys:
            log.info("multirun without a swept key: no sweep summary")
            return
        for key in keys:
            try:
                summarize_sweep(sweep_dir, key)
            except Exception:  # noqa: BLE001 - a summary failure must not hide the runs' own results
                log.exception("sweep summary over %s in %s failed", key, sweep_dir)


# ----------------------------------------------------------------------------------- train.py sweeps
# one row per train.py job (its train_result.json), gathered at the end of the multirun
SWEEP_SUMMARY = "sweep_summary"


def _job_sort_key(path: Path) -> tuple[int, str]:
    name = path.parent.name
    return (int(name), "") if name.isdigit() else (sys.maxsize, str(path))


def _fmt(value: Any) -> str:
    if value is None:
        return "nan"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def summarize_train_sweep(sweep_dir: str | Path, swept: list[str] | None = None) -> list[dict[str, Any]]:
    """Gather every job's ``train_result.json`` under ``sweep_dir`` into ``sweep_summary.csv`` and ``.md``.

    One row per job: its directory, the swept overrides (``swept`` keys; all of the job's overrides when None),
    status, the optimized metric's value, ``train/loss`` and ``val/loss``. Returns the rows.
    """
    root = Path(sweep_dir)
    rows: list[dict[str, Any]] = []
    for path in sorted(root.glob(f"**/{RESULT_FILE}"), key=_job_sort_key):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); left out of the sweep summary", path, exc)
            continue
        overrides = [
            o
            for o in record.get("overrides", [])
            if swept is None or o.split("=", 1)[0].lstrip("+~") in swept
        ]
        metrics = record.get("metrics") or {}
        rows.append(
            {
                "job": os.path.relpath(path.parent, root),
                "overrides": " ".join(overrides),
                "status": record.get("status", "?"),
                "metric": record.get("optimized_metric") or "",
                "value": record.get("value"),
                "train/loss": metrics.get("train/loss", metrics.get("train/loss_epoch")),
                "val/loss": metrics.get("val/loss"),
            }
        )
    if not rows:
        log.info("%s: no %s in any job directory; no sweep summary", root, RESULT_FILE)
        return rows
    columns = list(rows[0])
    csv_path = root / f"{SWEEP_SUMMARY}.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row[c]) for c in columns) + " |" for row in rows]
    md_path = root / f"{SWEEP_SUMMARY}.md"
    md_path.write_text("\n".join(lines) + "\n")
    log.info("training sweep (%d jobs): %s\n%s", len(rows), md_path, "\n".join(lines))
    return rows


class TrainSweepSummaryCallback(Callback):
    """Hydra callback: at the end of a ``train.py`` multirun, write ``sweep_summary.{csv,md}`` in the sweep dir."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        task = [str(o) for o in OmegaConf.to_container(config.hydra.overrides.task, resolve=False)]
        # the keys that vary (sweep overrides, sweeper params); all overrides when none is recognisable
        try:
            swept = sorted(set(swept_keys(task))) or None
        except Exception:  # noqa: BLE001 - only the summary's column choice depends on it
            swept = None
        params = OmegaConf.select(config, "hydra.sweeper.params")
        if params:
            swept = sorted({*(swept or []), *map(str, params)})
        try:
            summarize_train_sweep(sweep_dir, swept)
        except Exception:  # noqa: BLE001 - a summary failure must not hide the runs' own results
            log.exception("training sweep summary in %s failed", sweep_dir)


# ---------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ovsnet.cli.sweep_summary summarize MULTIRUN_DIR [--key inference.reid.rho] [--out DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m ovsnet.cli.sweep_summary", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    summarize = commands.add_parser("summarize", help="paper-style table + plot of an evaluate.py multirun")
    summarize.add_argument("multirun_dir", type=Path)
    summarize.add_argument("--key", default=None, help="the swept config key (default: the one that varies)")
    summarize.add_argument("--out", type=Path, default=None, help="output folder (default: multirun_dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        table = summarize_sweep(args.multirun_dir, args.key, args.out)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        log.error("%s", exc)
        return 2
    log.info("\n%s", table.drop(columns=["run_dir"]).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
