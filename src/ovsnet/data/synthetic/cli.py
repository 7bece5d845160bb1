"""``ovsnet-synthetic`` / ``python -m ovsnet.data.synthetic``: write a synthetic DAVIS-layout dataset.

python -m ovsnet.data.synthetic --out data/synthetic --sequences 8 --frames 16 --size 128x160
ovsnet-synthetic --out data/synthetic_photo --style photo --set photo.motion_blur=0.8 --set max_objects=3
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ovsnet.data.io import DataError
from ovsnet.data.procedural.config import STYLES, parse_size
from ovsnet.data.synthetic.writer import generate_dataset


def _size_arg(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except DataError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (expected HxW, e.g. 480x854)") from None


def _override_arg(text: str) -> str:
    """Only the form is checked here; OmegaConf parses the values (numbers, lists, nested keys)."""
    key, sep, _ = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return text


def _overrides(dotlist: list[str]) -> dict[str, Any]:
    """``["distractor_prob=0.5", "photo.motion_blur=0.8"]`` → ``{"distractor_prob": 0.5, "photo": {...}}``."""
    try:
        values = OmegaConf.to_container(OmegaConf.from_dotlist(dotlist), resolve=True)
    except OmegaConfBaseException as exc:
        raise DataError(f"bad --set value: {exc}") from None
    return {str(k): v for k, v in values.items()}  # type: ignore[union-attr]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ovsnet.data.synthetic --out DIR --sequences N --frames T --size HxW --seed S``."""
    parser = argparse.ArgumentParser(
        prog="ovsnet-synthetic",
        description="Procedural DAVIS-layout videos: ovsnet's embedded default dataset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (DAVIS 2017 layout)")
    parser.add_argument("--sequences", type=int, default=8, help="number of videos")
    parser.add_argument("--frames", type=int, default=16, help="frames per video")
    parser.add_argument("--size", type=_size_arg, default=(128, 160), help="frame size HxW, e.g. 480x854")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.25, help="fraction of videos in val.txt")
    parser.add_argument(
        "--style",
        choices=STYLES,
        default=None,
        help="toy: procedural shapes (default); photo: real photographs and articulated shapes",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        type=_override_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="SyntheticConfig override, e.g. --set distractor_prob=0.5 --set object_area=[0.1,0.2] "
        "--set photo.motion_blur=0.8",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.sequences < 1 or args.frames < 1 or args.seed < 0:
        parser.error("--sequences and --frames must be >= 1 and --seed >= 0")
    if not 0.0 <= args.val_fraction <= 1.0:
        parser.error(f"--val-fraction must be in [0, 1], got {args.val_fraction}")
    try:
        overrides = _overrides(args.overrides)
        if args.style is not None:
            overrides["style"] = args.style
        root = generate_dataset(
            args.out,
            args.sequences,
            args.frames,
            args.size,
            args.seed,
            args.val_fraction,
            progress=not args.no_progress,
            **overrides,
        )
    except DataError as exc:
        parser.error(str(exc))
    style = overrides.get("style", "toy")
    print(
        f"wrote {args.sequences} {style} synthetic videos ({args.frames} frames, "
        f"{args.size[0]}x{args.size[1]}) to {root}"
    )
    return 0
