"""The default inference on given checkpoints and videos beside its variants and the model-free baselines
(copy the first mask; optical-flow propagation) on the same videos: J&F with the default settings, without
the appearance correction (``inference.appearance.backbone=null``), with the absence rule
(``inference.absence.max_unsupported_streak=2``), and with any extra settings (``--variant``).

Each ``--set`` is ``NAME=CHECKPOINT:DATA_GROUP:ROOT`` (a DAVIS-layout folder with a ``val`` split), e.g. the
checkpoint and data of a ``make demo`` run:

    python bench/inference_variants.py \\
        --set demo=demo_output/train_mga/checkpoints/last.ckpt:synthetic_photo:demo_output/data/synthetic_photo \\
        --variant no_mga=inference.mga.enabled=false

Every evaluation is ``evaluate.py``'s own (``ovsnet.cli.stages.evaluate_stage``), its outputs under ``--work``;
the table goes to the terminal and ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ovsnet.cli import stages
from ovsnet.utils import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
BUILT_IN = {
    "default": [],
    "no appearance": ["inference.appearance.backbone=null"],
    "absence rule": ["inference.absence.max_unsupported_streak=2"],
}


def _pair(text: str, what: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"{what} must be NAME=VALUE, got {text!r}")
    return name, value


def _set(text: str) -> tuple[str, tuple[Path, str, Path]]:
    name, value = _pair(text, "--set")
    parts = value.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"--set {name}: expected CHECKPOINT:DATA_GROUP:ROOT, got {value!r}")
    ckpt, group, root = parts
    return name, (Path(ckpt), group, Path(root))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", dest="sets", type=_set, action="append", required=True)
    parser.add_argument(
        "--variant",
        type=lambda t: _pair(t, "--variant"),
        action="append",
        default=[],
        help="NAME=override[,override...]: more inference settings to score",
    )
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "results" / "inference_variants")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "inference_variants.json")
    args = parser.parse_args(argv)

    variants = dict(BUILT_IN)
    variants.update({name: value.split(",") for name, value in args.variant})
    results: dict[str, dict] = {}
    for name, (ckpt, group, root) in args.sets:
        row: dict = {}
        for label, overrides in variants.items():
            summary = stages.evaluate_stage(
                args.work,
                f"{name}_{label.replace(' ', '_')}",
                ckpt,
                [
                    f"data={group}",
                    f"data.root={root}",
                    f"baselines_dir={args.work}/baselines_{name}",
                    "media.enabled=false",
                    *overrides,
                ],
            )
            row[label] = {"J&F": summary["metrics"]["J&F-Mean"], "paths": summary.get("path_counts")}
            row["baselines"] = {k: v["J&F-Mean"] for k, v in (summary.get("baselines") or {}).items()}
        results[name] = row

    table = Table(title="inference variants: J&F beside the model-free baselines (same videos)")
    for column in ["set", *variants, "flow propagation", "copy first mask", "paths (default)"]:
        table.add_column(column, justify="right")
    for name, row in results.items():
        base = row["baselines"]
        table.add_row(
            name,
            *(f"{row[label]['J&F']:.3f}" for label in variants),
            f"{base.get('flow', float('nan')):.3f}",
            f"{base.get('copy', float('nan')):.3f}",
            " / ".join(str(v) for v in (row["default"]["paths"] or {}).values()),
        )
    Console(width=160).print(table)
    write_json_atomic(args.out, results)
    return results


if __name__ == "__main__":
    main()
