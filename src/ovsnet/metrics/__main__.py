"""``python -m ovsnet.metrics`` / ``ovsnet-metrics``: evaluate a results folder on a DAVIS-layout split.

Prints the global and per-object tables, writes ``global_results-<set>.csv`` and
``per-sequence_results-<set>.csv`` (official columns) into the results folder, and with ``--json`` every
figure at full precision, including the per-frame J and F of every object.

Without ``--year`` the layout decides (:func:`ovsnet.data.davis.detect_davis_layout`): ``ImageSets/2017/<set>.txt``
is DAVIS 2017 (multi-object); else ``ImageSets/2016/<set>.txt`` or the 2016 release's frame list
``ImageSets/480p/<set>.txt`` is DAVIS 2016 (single-object). A DAVIS 2017 download also carries the 2016 split
files: ``--year 2016`` scores those sequences the 2016 way. Without ``--resolution``, the first of 480p, 240p,
Full-Resolution, 1080p under ``JPEGImages`` is read.

CSVs already in the results folder are not replaced unless ``--overwrite`` is given (the check runs before
any scoring): a run on a subset (``--sequences``) or another split would silently replace the tables of an
earlier one. The official tool instead prints the existing CSVs without scoring again, which shows stale
numbers after the masks changed; here the choice is the user's.

    python -m ovsnet.metrics --davis-root data/DAVIS --set val --results outputs/davis17-val --json scores.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from ovsnet.data.davis import detect_davis_layout
from ovsnet.data.io import DataError
from ovsnet.metrics.parallel import evaluate_folder
from ovsnet.metrics.tables import GLOBAL_COLUMNS, PER_OBJECT_COLUMNS, DavisEvaluation, csv_paths

__all__ = ["build_parser", "existing_csvs", "main", "render_tables", "resolve_layout"]


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
    parser.add_argument(
        "--year",
        type=int,
        default=None,
        choices=(2016, 2017),
        help="DAVIS year (default: detected from ImageSets/, 2017 first)",
    )
    parser.add_argument(
        "--resolution", default=None, help="frame folder under JPEGImages/ (default: detected, 480p first)"
    )
    parser.add_argument(
        "--sequences", nargs="+", default=None, help="evaluate only these sequences of the split"
    )
    parser.add_argument(
        "--json", default=None, help="also write every figure at full precision to this JSON file"
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the CSVs of an earlier evaluation in the results folder (refused otherwise)",
    )
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


def resolve_layout(davis_root: str, split: str, year: int | None, resolution: str | None) -> tuple[int, str]:
    """``(year, resolution)``: those given, the others read from the folder, so a DAVIS 2016 root needs no
    flag (:func:`~ovsnet.data.davis.detect_davis_layout`)."""
    if year is None or resolution is None:
        detected_year, detected_resolution = detect_davis_layout(davis_root, split)
        year = detected_year if year is None else year
        resolution = detected_resolution if resolution is None else resolution
    return year, resolution


def existing_csvs(results: str, split: str) -> list[Path]:
    """The official CSVs an evaluation of ``split`` writes that are already in ``results``."""
    return [path for path in csv_paths(results, split) if path.exists()]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 120)  # full headers when piped or logged
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    try:
        present = existing_csvs(args.results, args.set)
        if present and not args.overwrite:
            raise DataError(
                f"results folder {args.results} already holds {', '.join(p.name for p in present)} from an "
                "earlier evaluation; pass --overwrite to replace them"
            )
        year, resolution = resolve_layout(args.davis_root, args.set, args.year, args.resolution)
        if args.year is None or args.resolution is None:
            Console(stderr=True).print(
                f"{escape(args.davis_root)}: DAVIS {year} layout, {resolution} frames (detected; --year and "
                "--resolution choose)",
                highlight=False,
                soft_wrap=True,
            )
        evaluation = evaluate_folder(
            args.davis_root,
            args.results,
            split=args.set,
            year=year,
            resolution=resolution,
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
