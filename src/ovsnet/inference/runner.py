"""Run a :class:`VideoSegmenter` over sequences and write DAVIS-style results (the core of evaluate.py).

One indexed PNG per frame, named like the input frame, in ``<results_dir>/<sequence>/``; a ``.done``
marker holding the run's figures is written last, so an interrupted dataset run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ovsnet.data.io import DataError, atomic_path, write_label_map
from ovsnet.data.sequence import VideoSequence
from ovsnet.inference.segmenter import VideoSegmenter

__all__ = ["DONE_MARKER", "SequenceResult", "segment_dataset", "segment_sequence"]

logger = logging.getLogger(__name__)

DONE_MARKER = ".done"


@dataclass
class SequenceResult:
    """Figures of one segmented sequence; ``seconds``/``fps`` cover segmentation and result writing."""

    name: str
    num_frames: int
    seconds: float
    fps: float
    path_counts: dict[str, int] = field(default_factory=dict)
    decisions: list[dict[int, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    skipped: bool = False
    detected_frames: int = 0  # frames after the first the detector ran on (inference.detector.every)


@contextlib.contextmanager
def _progress(enabled: bool, description: str, total: int | None) -> Iterator[Callable[[float], None]]:
    """Yield ``advance(fps)``; a rich bar with the running fps when enabled, a no-op otherwise."""
    if not enabled:
        yield lambda fps: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.1f} fps"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(description, total=total, fps=0.0)
        yield lambda fps: bar.update(task, advance=1, fps=fps)


def _frames_of(
    source: VideoSequence | Iterable[np.ndarray],
    first_mask: np.ndarray | None,
    frame_names: Sequence[str] | None,
) -> tuple[str, Iterable[np.ndarray], np.ndarray, Sequence[str] | None]:
    if isinstance(source, VideoSequence):
        mask = source.first_frame_mask if first_mask is None else first_mask
        return source.name, source.frames(), mask, frame_names or source.frame_names
    if first_mask is None:
        raise DataError("segment_sequence: a frame iterator needs first_mask (the first frame's label map)")
    return "video", source, np.asarray(first_mask), frame_names


def _new_objects(source: Any, index: int, known: list[int]) -> np.ndarray | None:
    """The annotation of frame ``index`` when it introduces object ids not tracked yet (DAVIS protocol)."""
    if not isinstance(source, VideoSequence) or index == 0 or not source.has_label(index):
        return None
    labels = source.label_map(index)
    ids = set(np.unique(labels).tolist()) - {0, 255} - set(known)
    return labels if ids else None


def _write_done(out: Path, result: SequenceResult) -> None:
    with atomic_path(out / DONE_MARKER) as tmp:
        tmp.write_text(json.dumps(asdict(result), default=str))


def segment_sequence(
    segmenter: VideoSegmenter,
    sequence: VideoSequence | Iterable[np.ndarray],
    out_dir: str | os.PathLike,
    first_mask: np.ndarray | None = None,
    frame_names: Sequence[str] | None = None,
    progress: bool = True,
    add_new_objects: bool = True,
    on_result: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> SequenceResult:
    """Segment a video online and write ``<out_dir>/<frame name>.png`` per frame, then the ``.done`` marker.

    ``sequence`` is a :class:`VideoSequence` or an iterator of uint8 RGB frames (then ``first_mask`` is
    required; frames are named ``00000``, ``00001``... unless ``frame_names`` is given). The first frame's
    output is its given mask, as in the DAVIS protocol. Objects first annotated later are added on the fly.
    ``on_result(frame, labels)`` is called for each frame once its PNG is written (an overlay video).
    """
    name, frames, mask, names = _frames_of(sequence, first_mask, frame_names)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    total = len(sequence) if isinstance(sequence, VideoSequence) else (len(names) if names else None)
    start, count = time.perf_counter(), 0
    with _progress(progress, name, total) as advance:
        for index, frame in enumerate(frames):
            if names is not None and index >= len(names):
                raise DataError(f"sequence {name!r}: more frames than frame names ({len(names)})")
            if index == 0:
                segmenter.start(frame, mask)
                labels = np.asarray(mask, dtype=np.uint8)
            else:
                labels = segmenter.step(frame)
                extra = _new_objects(sequence, index, segmenter.object_ids) if add_new_objects else None
                if extra is not None:
                    labels = segmenter.add_objects(frame, extra)
            write_label_map(out / f"{names[index] if names else f'{index:05d}'}.png", labels)
            if on_result is not None:
                on_result(frame, labels)
            count += 1
            advance(count / max(time.perf_counter() - start, 1e-9))
    if count == 0:
        raise DataError(f"sequence {name!r}: no frames to segment")
    seconds = time.perf_counter() - start
    result = SequenceResult(
        name=name,
        num_frames=count,
        seconds=seconds,
        fps=count / max(seconds, 1e-9),
        path_counts=dict(segmenter.path_counts),
        decisions=list(segmenter.decisions),
        timings=dict(segmenter.timings),
        detected_frames=segmenter.detected_frames,
    )
    _write_done(out, result)
    logger.info(
        "%s: %d frames in %.2f s (%.1f fps) paths %s", name, count, seconds, result.fps, result.path_counts
    )
    return result


def _completed(sequence: VideoSequence, out: Path) -> SequenceResult | None:
    """The stored result when the marker exists and every frame's PNG is there, else ``None``."""
    marker = out / DONE_MARKER
    if not marker.is_file() or not all((out / f"{n}.png").is_file() for n in sequence.frame_names):
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        logger.warning("unreadable %s; segmenting %s again", marker, sequence.name)
        return None
    data["decisions"] = [{int(k): v for k, v in d.items()} for d in data.get("decisions", [])]
    data["skipped"] = True
    return SequenceResult(**{k: v for k, v in data.items() if k in SequenceResult.__dataclass_fields__})


def segment_dataset(
    make_segmenter: Callable[[], VideoSegmenter],
    sequences: Iterable[VideoSequence],
    results_dir: str | os.PathLike,
    skip_done: bool = True,
    progress: bool = True,
    on_failure: Callable[[VideoSequence, Exception], None] | None = None,
) -> list[SequenceResult]:
    """Segment every sequence into ``<results_dir>/<name>/``; complete ones are skipped when ``skip_done``.

    ``make_segmenter`` is called once, the first time a sequence needs work (so a fully done run loads no
    model); ``start`` resets it between sequences. ``on_failure``: bad input in one video (a
    :class:`DataError` or ``OSError`` while segmenting it; not a failure to build the segmenter) is handed to
    it with the sequence, and the others go on; without it the error propagates.
    """
    root = Path(results_dir)
    segmenter: VideoSegmenter | None = None
    results: list[SequenceResult] = []
    for sequence in sequences:
        out = root / sequence.name
        done = _completed(sequence, out) if skip_done else None
        if done is not None:
            logger.info("%s: already segmented, skipping", sequence.name)
            results.append(done)
            continue
        (out / DONE_MARKER).unlink(missing_ok=True)
        segmenter = segmenter or make_segmenter()
        try:
            results.append(segment_sequence(segmenter, sequence, out, progress=progress))
        except (DataError, OSError) as exc:
            if on_failure is None:
                raise
            on_failure(sequence, exc)
    return results
