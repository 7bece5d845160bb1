"""``python -m ovsnet.metrics`` / ``ovsnet-metrics``: evaluate a results folder on a DAVIS-layout split.

Prints the global and per-object tables, writes ``global_results-<set>.csv`` and
``per-sequence_results-<set>.csv`` (official columns) into the results folder, and with ``--json`` every
figure at full precision, including the per-frame J and F of every object.

    python -m ovsnet.metrics --davis-root data/DAVIS --set val --results outputs/davis17-val --json scores.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from ovsnet.data.io import DataError
from ovsnet.metrics.davis import GLOBAL_COLUMNS, PER_OBJECT_COLUMNS, DavisEvaluation, evaluate_folder

__all__ = ["build_parser", "main", "render_tables"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ovsnet.metrics",
        description="DAVIS 2017 semi-supervised evaluation (J, F and their statistics), identical to the official "
        "tool.",
    )
    parser.add_argument(
        "--davis-root", required=True, help="DAVIS folder (JPEGImages/, Annotations/, ImageSets/)"
    )
    parser.add_argument(
        "--set", default="val", help="split to evaluate (ImageSets/<year>/<set>.txt), default val"
    )
    parser.add_argument(
        "--results",
        required=True,
        help="folder with <sequence>/<frame>.png result masks; the CSV files are written here",
    )
    parser.add_argument("--year", type=int, default=2017, choices=(2016, 2017))
    parser.add_argument("--resolution", default="480p")
    parser.add_argument(
        "--sequences", nargs="+", default=None, help="evaluate only these sequences of the split"
    )
    parser.add_argument(
        "--json", default=None, help="also write every figure at full precision to this JSON file"
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser


def render_tables(evaluation: DavisEvaluation) -> tuple[Table, Table]:
    """Rich tables of the global figures and of every object's statistics (3 decimals, like the tool)."""
    global_table = Table(title=f"Global results for {evaluation.split}")
    for column in GLOBAL_COLUMNS:
        global_table.add_column(column, justify="right")
    global_table.add_row(*(f"{evaluation.scores[c]:.3f}" for c in GLOBAL_COLUMNS))

    object_table = Table(title=f"Per-object results for {evaluation.split}")
    for column in PER_OBJECT_COLUMNS:
        object_table.add_column(column, justify="left" if column == "Sequence" else "right")
    for row in evaluation.per_object.itertuples(index=False):
        object_table.add_row(escape(str(row[0])), *(f"{value:.3f}" for value in row[1:]))
    return global_table, object_table


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 120)  # full headers when piped or logged
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    try:
        evaluation = evaluate_folder(
            args.davis_root,
            args.results,
            split=args.set,
            year=args.year,
            resolution=args.resolution,
            sequences=args.sequences,
            workers=args.workers,
        )
    except DataError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    global_path, per_sequence_path = evaluation.write_csv(args.results)
    global_table, object_table = render_tables(evaluation)
    console.print(object_table)
    console.print(global_table)
    console.print(f"wrote {global_path} and {per_sequence_path}", highlight=False)
    if args.json:
        console.print(f"wrote {evaluation.to_json(args.json)}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
