"""Inference variants of one ``make davis16`` checkpoint on the held-out DAVIS 2016 training videos, beside the
no-network pipeline and the model-free baselines (copy the first mask; optical-flow propagation).

    python bench/davis16_variants.py --ckpt davis16_output/adapt/checkpoints/last.ckpt \\
        --variant "paper rules=inference=paper" \\
        --variant "iou blend=inference.cascade.switch_iou=0.5,inference.cascade.iou_flow_weight=0.5"

Each ``--variant`` is ``NAME=OVERRIDE[,OVERRIDE...]`` (evaluate.py overrides). The rows ``checkpoint settings``
(what the checkpoint stores) and ``no network`` are always there. Every evaluation is ``evaluate.py``'s own, its
outputs under ``--work`` (finished videos are kept: a re-run resumes); the table goes to the terminal and
``--out`` (JSON).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ovsnet.cli import davis16, stages
from ovsnet.utils import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]


def _variant(text: str) -> tuple[str, list[str]]:
    name, sep, overrides = text.partition("=")
    if not sep or not name or not overrides:
        raise argparse.ArgumentTypeError(f"--variant must be NAME=OVERRIDE[,OVERRIDE...], got {text!r}")
    # split on commas that start a new key=value (a list value like sequences=[a,b] keeps its commas)
    parts: list[str] = []
    for piece in overrides.split(","):
        if parts and "=" not in piece:
            parts[-1] += "," + piece
        else:
            parts.append(piece)
    return name, parts


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", type=Path, required=True, help="a make davis16 checkpoint")
    parser.add_argument("--davis", type=Path, default=davis16.DEFAULT_DAVIS, help="DAVIS 2016 train root")
    parser.add_argument("--variant", type=_variant, action="append", default=[])
    parser.add_argument("--eval", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every row")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "results" / "davis16_variants")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "davis16_variants.json")
    args = parser.parse_args(argv)
    data = davis16.data_overrides(args.davis.resolve(), davis16.holdout_videos(args.davis.resolve()))
    variants = [("checkpoint settings", []), *args.variant, ("no network", ["network=false"])]
    rows = {}
    for name, overrides in variants:
        folder = "v_" + "".join(c if c.isalnum() else "_" for c in name)
        davis16.console.print(f"  {name}: {' '.join(overrides) or '(as stored)'}")
        rows[name] = stages.evaluate_stage(
            args.work.resolve(),
            folder,
            args.ckpt.resolve(),
            [
                *data,
                f"baselines_dir={args.work.resolve()}/baselines",
                "media.enabled=false",
                *overrides,
                *args.eval,
            ],
        )
    davis16.show_table(rows)
    write_json_atomic(
        args.out,
        {
            name: {
                "overrides": dict(variants)[name],
                "metrics": s.get("metrics"),
                "baselines": s.get("baselines"),
                "path_counts": s.get("path_counts"),
                "lost_while_visible": s.get("lost_while_visible"),
                "fps": s.get("fps"),
                "timings_ms_per_frame": s.get("timings_ms_per_frame"),
            }
            for name, s in rows.items()
        },
    )
    return rows


if __name__ == "__main__":
    main()
