"""``meta/<seq>.json``: what happened in a video, frame by frame, so tests and benchmarks can pick the hard
cases (occlusions, exits and re-entries, distractors) without re-deriving them from the label maps."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ovsnet.data.procedural.render import SyntheticFrame, SyntheticVideo

_INNER_LIST = re.compile(r"\[\s+([^\[\]{}\"]*?)\s+\]")


def dumps(data: dict[str, Any]) -> str:
    """Indented JSON with flat lists of numbers on one line each (readable, and small for long videos)."""
    return _INNER_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", json.dumps(data, indent=1))


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """Inclusive (start, end) of each maximal run of True."""
    runs, start = [], None
    for t, flag in enumerate(flags):
        if flag and start is None:
            start = t
        elif not flag and start is not None:
            runs.append((start, t - 1))
            start = None
    if start is not None:
        runs.append((start, len(flags) - 1))
    return runs


def build_meta(video: SyntheticVideo, frames: Sequence[SyntheticFrame]) -> dict[str, Any]:
    """``meta/<seq>.json`` content: per-frame per-object visibility plus occlusion and re-entry events.

    ``visibility`` = visible pixels / pixels the shape covers inside the frame when nothing occludes it
    (0 when outside); ``in_frame_fraction`` = those in-frame pixels / the whole shape's area.
    """
    meta = video.describe()
    threshold = video.config.occlusion_threshold
    occlusions, reentries = [], []
    for obj in meta["objects"]:
        oid = obj["id"]
        stats = [f.objects[oid] for f in frames]
        visible = [s["visible"] for s in stats]
        in_frame_px = [s["in_frame"] for s in stats]
        visibility = [round(v / p, 4) if p else 0.0 for v, p in zip(visible, in_frame_px, strict=True)]
        in_frame = [p > 0 for p in in_frame_px]
        obj.update(
            {
                "visible_pixels": visible,
                "in_frame_pixels": in_frame_px,
                "visibility": visibility,
                "in_frame": in_frame,
                "in_frame_fraction": [
                    round(min(1.0, p / s["area"]), 4) if s["area"] > 0 else 0.0
                    for p, s in zip(in_frame_px, stats, strict=True)
                ],
                "occluded_by": [s["occluded_by"] for s in stats],
                "occluded_by_distractor": [s["by_distractor"] for s in stats],
            }
        )
        occluded = [f and v < threshold for f, v in zip(in_frame, visibility, strict=True)]
        for start, end in _runs(occluded):
            occlusions.append(
                {
                    "object": oid,
                    "start": start,
                    "end": end,
                    "min_visibility": min(visibility[start : end + 1]),
                    "occluders": sorted({o for s in stats[start : end + 1] for o in s["occluded_by"]}),
                    "by_distractor": any(s["by_distractor"] for s in stats[start : end + 1]),
                }
            )
        absent = [v == 0 for v in visible]
        for start, end in _runs(absent):
            if start == 0 or end == len(absent) - 1:
                continue  # not a leave-and-come-back
            reentries.append(
                {
                    "object": oid,
                    "exit": start,
                    "reenter": end + 1,
                    "absent_frames": end - start + 1,
                    "cause": "left_frame" if not all(in_frame[start : end + 1]) else "occluded",
                }
            )
    meta["distractor_visible_pixels"] = [
        [f.distractors[j] for f in frames] for j in range(len(meta["distractors"]))
    ]
    meta["occlusion_events"] = sorted(occlusions, key=lambda e: (e["start"], e["object"]))
    meta["reentry_events"] = sorted(reentries, key=lambda e: (e["exit"], e["object"]))
    return meta
