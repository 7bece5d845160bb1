"""ovsnet.data.video_reader and ovsnet.data.video_writer: VideoWriter round trips, image folders, PyAV fallback, errors, atomic writes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ovsnet.data import video_reader as video_mod
from ovsnet.data.io import DataError, write_frame
from ovsnet.data.video_reader import iter_video_frames, video_info
from ovsnet.data.video_writer import VideoWriter
from tests.davis_fixtures import H, W

N = 5


def _frames(n: int = N, height: int = H, width: int = W) -> list[np.ndarray]:
    """Flat colour blocks (video codecs keep them nearly exact): left half red level i, right half green."""
    frames = []
    for i in range(n):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:, : width // 2] = (40 * i + 20, 0, 0)
        frame[:, width // 2 :] = (0, 200, 60)
        frames.append(frame)
    return frames


def _assert_close(got: list[np.ndarray], expected: list[np.ndarray], tol: float = 12.0) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == np.uint8 and g.shape == e.shape
        h, w = e.shape[:2]
        inner = (slice(4, h - 4), slice(4, w // 2 - 4))  # away from the colour edge
        assert np.abs(g[inner].astype(float).mean(axis=(0, 1)) - e[inner][0, 0]).max() < tol
        inner = (slice(4, h - 4), slice(w // 2 + 4, w - 4))
        assert np.abs(g[inner].astype(float).mean(axis=(0, 1)) - e[inner][0, 0]).max() < tol


def _write(path: Path, frames: list[np.ndarray], **kwargs: object) -> VideoWriter:
    with VideoWriter(path, fps=10, **kwargs) as writer:  # type: ignore[arg-type]
        for frame in frames:
            writer.write(frame)
    return writer


def test_mp4_round_trip_count_size_colours(tmp_path: Path) -> None:
    frames = _frames()
    writer = _write(tmp_path / "out" / "overlay.mp4", frames)
    assert writer.frames_written == N and writer.backend == "opencv"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["overlay.mp4"]  # no temp left
    got = list(iter_video_frames(tmp_path / "out" / "overlay.mp4"))
    _assert_close(got, frames)
    count, fps, size = video_info(tmp_path / "out" / "overlay.mp4")
    assert count == N and fps == pytest.approx(10.0) and size == (H, W)
    (tmp_path / "plain.txt").write_text("x")  # the atomic write keeps ordinary permissions, not 0o600
    assert (tmp_path / "out" / "overlay.mp4").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode


@pytest.mark.parametrize("suffix", [".avi", ".mkv", ".webm"])
def test_other_containers_round_trip(tmp_path: Path, suffix: str) -> None:
    frames = _frames(4)
    writer = _write(tmp_path / f"v{suffix}", frames)
    assert writer.backend == ("opencv" if suffix == ".avi" else "pyav")
    _assert_close(list(iter_video_frames(tmp_path / f"v{suffix}")), frames)
    assert video_info(tmp_path / f"v{suffix}")[2] == (H, W)


def test_pyav_backend_for_mp4_and_explicit_codec(tmp_path: Path) -> None:
    frames = _frames(3)
    writer = _write(tmp_path / "v.mp4", frames, codec="mpeg4")
    assert writer.backend == "pyav"
    _assert_close(list(iter_video_frames(tmp_path / "v.mp4")), frames)


def test_reader_falls_back_to_pyav(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = _frames()
    _write(tmp_path / "v.mp4", frames)
    calls: list[Path] = []

    def refuse(path: Path) -> None:
        calls.append(path)
        return None

    monkeypatch.setattr(video_mod, "_open_opencv", refuse)
    got = list(iter_video_frames(tmp_path / "v.mp4"))
    assert calls == [tmp_path / "v.mp4"]
    _assert_close(got, frames)
    count, fps, size = video_info(tmp_path / "v.mp4")
    assert size == (H, W) and fps == pytest.approx(10.0) and count in (None, N)


def test_odd_size_is_padded_not_cropped(tmp_path: Path) -> None:
    frames = _frames(3, H - 1, W - 1)
    _write(tmp_path / "odd.mp4", frames)
    got = list(iter_video_frames(tmp_path / "odd.mp4"))
    assert got[0].shape == (H, W, 3)
    _assert_close([g[: H - 1, : W - 1] for g in got], frames, tol=15.0)


def test_image_folder_and_single_image(tmp_path: Path) -> None:
    frames = _frames(4)
    for i, frame in enumerate(frames):
        write_frame(tmp_path / "seq" / f"{i:05d}.png", frame)
    (tmp_path / "seq" / "notes.txt").write_text("ignored")
    got = list(iter_video_frames(tmp_path / "seq"))
    assert len(got) == 4
    for g, e in zip(got, frames, strict=True):
        np.testing.assert_array_equal(g, e)
    assert video_info(tmp_path / "seq") == (4, None, (H, W))
    (single,) = list(iter_video_frames(tmp_path / "seq" / "00002.png"))
    np.testing.assert_array_equal(single, frames[2])
    assert video_info(tmp_path / "seq" / "00002.png") == (1, None, (H, W))


def test_image_folder_size_change_names_the_frame(tmp_path: Path) -> None:
    write_frame(tmp_path / "00000.png", np.zeros((H, W, 3), np.uint8))
    write_frame(tmp_path / "00001.png", np.zeros((H, W, 3), np.uint8))
    write_frame(tmp_path / "00002.png", np.zeros((H // 2, W, 3), np.uint8))
    frames = iter_video_frames(tmp_path)
    assert next(frames).shape == (H, W, 3)
    next(frames)
    with pytest.raises(DataError, match=r"frame 2 \(00002\.png\)"):
        next(frames)


def test_video_size_change_names_file_and_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Encoders refuse to change size mid-stream, so feed the checker a decoder that does.
    _write(tmp_path / "v.mp4", _frames(2))
    real = video_mod._open_opencv

    def resizing(path: Path) -> video_mod._OpenedVideo | None:
        opened = real(path)
        assert opened is not None
        opened.rest = iter([np.zeros((H, W, 3), np.uint8), np.zeros((H, W + 2, 3), np.uint8)])
        return opened

    monkeypatch.setattr(video_mod, "_open_opencv", resizing)
    frames = iter_video_frames(tmp_path / "v.mp4")
    next(frames), next(frames)
    with pytest.raises(DataError, match=r"v\.mp4: frame 2 has size"):
        next(frames)


def test_missing_empty_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="absent.mp4"):
        iter_video_frames(tmp_path / "absent.mp4")
    with pytest.raises(DataError, match="absent.mp4"):
        video_info(tmp_path / "absent.mp4")
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(DataError, match="zero.mp4"):
        iter_video_frames(tmp_path / "zero.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video" * 50)
    with pytest.raises(DataError, match=r"unreadable.*junk\.mp4"):
        iter_video_frames(tmp_path / "junk.mp4")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="nothing"):
        iter_video_frames(tmp_path / "nothing")


def test_video_with_zero_frames(tmp_path: Path) -> None:
    path = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    writer.release()
    assert path.stat().st_size > 0  # a valid header, but no frame
    with pytest.raises(DataError, match=r"empty\.avi.*no frames"):
        iter_video_frames(path)
    with pytest.raises(DataError, match=r"empty\.avi"):
        video_info(path)


def test_early_stop_releases_the_reader(tmp_path: Path) -> None:
    _write(tmp_path / "v.mp4", _frames())
    frames = iter_video_frames(tmp_path / "v.mp4")
    next(frames)
    frames.close()  # type: ignore[attr-defined]
    assert len(list(iter_video_frames(tmp_path / "v.mp4"))) == N


# ---------------------------------------------------------------- writer errors and atomicity


def test_writer_exception_leaves_nothing_and_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "overlay.mp4"
    _write(target, _frames(2))
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(target, fps=10) as writer:
            writer.write(_frames(1)[0])
            raise RuntimeError("boom")
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["overlay.mp4"]
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "new.webm", fps=10) as writer:
            writer.write(_frames(1)[0])
            raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["overlay.mp4"]


def test_writer_rejects_size_change_bad_frames_and_no_frames(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"v\.mp4: frame 1 has size"):
        with VideoWriter(tmp_path / "v.mp4") as writer:
            writer.write(np.zeros((H, W, 3), np.uint8))
            writer.write(np.zeros((H, W + 2, 3), np.uint8))
    with pytest.raises(DataError, match=r"v\.mp4: frame 0 must be uint8"):
        with VideoWriter(tmp_path / "v.mp4") as writer:
            writer.write(np.zeros((H, W), np.float32))
    with pytest.raises(DataError, match=r"v\.mp4: no frames"):
        with VideoWriter(tmp_path / "v.mp4"):
            pass
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="extension"):
        VideoWriter(tmp_path / "noext")
    with pytest.raises(DataError, match="fourcc"):
        VideoWriter(tmp_path / "v.webm", backend="opencv")
    with pytest.raises(DataError, match="fps"):
        VideoWriter(tmp_path / "v.mp4", fps=0)
    assert list(tmp_path.iterdir()) == []


def test_write_after_close_and_dropped_writer(tmp_path: Path) -> None:
    writer = _write(tmp_path / "v.mp4", _frames(1))
    with pytest.raises(DataError, match="after close"):
        writer.write(_frames(1)[0])
    dropped = VideoWriter(tmp_path / "dropped.mp4")
    dropped.write(_frames(1)[0])
    del dropped
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_stream_url_and_missing_camera(tmp_path: Path) -> None:
    frames = _frames(3)
    _write(tmp_path / "v.mp4", frames)
    url = f"file://{tmp_path / 'v.mp4'}"
    _assert_close(list(iter_video_frames(url)), frames)
    assert video_info(url)[2] == (H, W)
    with pytest.raises(DataError, match="camera 57"):
        iter_video_frames(57)
    with pytest.raises(DataError, match="camera 57"):
        video_info("57")
