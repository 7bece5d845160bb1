"""ovsnet-video (``ovsnet.cli.video``) and ``ovsnet.inference.video_job.segment_video``: a tiny checkpoint on a short
mp4 end to end, image folders, a killed run's leftovers, and every bad-input message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ovsnet.cli import video as video_cli
from ovsnet.cli.video import main
from ovsnet.data.io import DataError, read_label_map, write_frame, write_label_map
from ovsnet.data.video_reader import VideoWriter, iter_video_frames
from ovsnet.inference.matching import matching_dtype
from ovsnet.inference.settings import InferenceSettings
from ovsnet.inference.video_job import segment_video
from ovsnet.models.ovsnet import build_ovsnet
from tests.tiny_models import TINY_MODEL, FakeModel

H, W, N, SIDE = 64, 80, 5, 20
SUMMARY_KEYS = {
    "video",
    "frames",
    "seconds",
    "fps",
    "path_counts",
    "detected_frames",
    "timings",
    "timings_ms_per_frame",
    "device",
    "flow",
    "autocast",
    "inference",
    "masks_dir",
    "overlay",
    "overlay_fps",
}


def _frames(n: int = N) -> list[np.ndarray]:
    """A bright red square moving right over a dark textured background."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
    frames = []
    for t in range(n):
        frame = background.copy()
        frame[20 : 20 + SIDE, 10 + 4 * t : 10 + 4 * t + SIDE] = (230, 30, 30)
        frames.append(frame)
    return frames


def _first_mask(path: Path, shape: tuple[int, int] = (H, W), empty: bool = False) -> Path:
    mask = np.zeros(shape, np.uint8)
    if not empty:
        mask[20 : 20 + SIDE, 10 : 10 + SIDE] = 1
    write_label_map(path, mask)
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("video_cli")
    torch.manual_seed(0)
    model = build_ovsnet(**TINY_MODEL)
    ckpt = root / "tiny.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {"model_config": TINY_MODEL},
        },
        ckpt,
    )
    other = root / "other.ckpt"  # another architecture: keys that are not OVS-Net's
    torch.save(
        {
            "state_dict": {"model.encoder.weight": torch.zeros(3, 3)},
            "hyper_parameters": {"model_config": TINY_MODEL},
        },
        other,
    )
    video = root / "square.mp4"
    with VideoWriter(video, fps=10) as writer:
        for frame in _frames():
            writer.write(frame)
    return {
        "ckpt": ckpt,
        "other": other,
        "video": video,
        "mask": _first_mask(root / "mask.png"),
        "root": root,
    }


def _args(assets: dict[str, Path], out: Path, **overrides: object) -> list[str]:
    values = {
        "--video": assets["video"],
        "--first-mask": assets["mask"],
        "--ckpt": assets["ckpt"],
        "--out": out,
        **{f"--{k.replace('_', '-')}": v for k, v in overrides.items()},
    }
    return [str(a) for kv in values.items() for a in kv] + ["--device", "cpu"]


def test_main_segments_an_mp4(assets: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(_args(assets, out, rho_iou=0.4, fps=7, detect_every=2)) == 0
    masks = sorted((out / "masks").glob("*.png"))
    assert [p.name for p in masks] == [f"{t:05d}.png" for t in range(N)]
    assert all(read_label_map(p).shape == (H, W) for p in masks)
    np.testing.assert_array_equal(read_label_map(masks[0]), read_label_map(assets["mask"]))
    overlay = list(iter_video_frames(out / "overlay.mp4"))
    assert len(overlay) == N and overlay[0].shape == (H, W, 3)
    with Image.open(out / "path_timeline.png") as image:
        assert image.format == "PNG"
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["frames"] == N and summary["fps"] > 0 and summary["overlay_fps"] == 7
    assert summary["inference"]["cascade"]["rho_iou"] == 0.4 and summary["inference"]["reid"]["rho"] == 2.3
    assert sum(summary["path_counts"].values()) == N - 1  # one object, one decision per later frame
    assert summary["inference"]["detector"]["every"] == 2 and 2 <= summary["detected_frames"] <= N - 1
    assert set(summary["timings"]) == {"detect", "flow", "cascade", "mga", "appearance", "merge"}
    # the network's features are matched in the format this machine resolves "auto" to
    assert summary["appearance_dtype"] == str(matching_dtype("auto", "cpu")).removeprefix("torch.")
    hidden = [p.name for p in out.rglob(".*") if p.name != ".done"]
    assert hidden == []  # no temporary files left behind


def test_segment_video_on_an_image_folder(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    for t, frame in enumerate(_frames()):
        write_frame(folder / f"img_{t * 10:03d}.jpg", frame)
    out = tmp_path / "out"
    (out / "masks").mkdir(parents=True)
    (out / "masks" / "stale.png").write_bytes(b"old run")
    mask = read_label_map(_first_mask(tmp_path / "mask.png"))
    result = segment_video(
        FakeModel(),
        folder,
        mask,
        out,
        flow="farneback",
        overlay=False,
        cascade_config=InferenceSettings(),
        progress=False,
    )
    assert result.num_frames == N and result.name == "frames"
    assert sorted(p.name for p in (out / "masks").glob("*.png")) == [
        f"img_{t * 10:03d}.png" for t in range(N)
    ]
    assert set(np.unique(read_label_map(out / "masks" / "img_040.png"))) == {0, 1}
    assert not (out / "overlay.mp4").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overlay"] is None and summary["flow"] == "farneback"


def test_crash_mid_video_keeps_written_masks(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    frames = _frames()
    frames[3] = np.zeros((H + 8, W, 3), np.uint8)  # the size changes mid-video
    for t, frame in enumerate(frames):
        write_frame(folder / f"{t:05d}.png", frame)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"frame 3 \(00003.png\) has size \(72, 80\)"):
        segment_video(FakeModel(), folder, _first_mask(tmp_path / "mask.png"), out, progress=False)
    assert sorted(p.name for p in (out / "masks").glob("*.png")) == ["00000.png", "00001.png", "00002.png"]
    assert sorted(p.name for p in out.iterdir()) == ["masks"]  # no overlay, not even a partial one


def test_a_killed_runs_temporaries_are_removed(tmp_path: Path) -> None:
    """A SIGKILL during the final writes leaves atomic_path's hidden temporaries; the next run removes them."""
    folder = tmp_path / "frames"
    for t, frame in enumerate(_frames(3)):
        write_frame(folder / f"{t:05d}.png", frame)
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".overlay.k1ll3d.mp4", out / ".summary.x9.json", out / ".path_timeline.abc.png"]
    for path in stale:
        path.write_bytes(b"half a file")
    keep = out / ".notes.txt"
    keep.write_text("not ours")
    segment_video(FakeModel(), folder, _first_mask(tmp_path / "mask.png"), out, overlay=False, progress=False)
    assert not any(path.exists() for path in stale) and keep.exists()
    assert (out / "summary.json").is_file()


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], code: int) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == code
    return capsys.readouterr().err


def _one_line(err: str) -> str:
    """The error output is one ``ovsnet-video: error:`` line (no traceback, no log noise)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ovsnet-video: error: "), err
    return lines[0]


def test_bad_masks(assets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every input error exits 2 (as evaluate.py): a missing file as much as a bad mask."""
    small = _first_mask(tmp_path / "small.png", shape=(H // 2, W // 2))
    err = _one_line(_fails(_args(assets, tmp_path / "a", first_mask=small), capsys, 2))
    assert f"first-frame mask {small} is 40x32 (WxH)" in err and "are 80x64" in err
    empty = _first_mask(tmp_path / "empty.png", empty=True)
    err = _one_line(_fails(_args(assets, tmp_path / "b", first_mask=empty), capsys, 2))
    assert f"first-frame mask {empty} is empty" in err
    err = _fails(_args(assets, tmp_path / "c", first_mask=tmp_path / "missing.png"), capsys, 2)
    assert "--first-mask" in err and "missing.png" in err


def test_bad_videos(assets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    err = _one_line(_fails(_args(assets, tmp_path / "a", video=empty), capsys, 2))
    assert str(empty) in err and "empty" in err
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 50)
    err = _one_line(_fails(_args(assets, tmp_path / "b", video=garbage), capsys, 2))
    assert f"unreadable video file {garbage}" in err
    no_frames = tmp_path / "no_frames"
    no_frames.mkdir()
    err = _one_line(_fails(_args(assets, tmp_path / "c", video=no_frames), capsys, 2))
    assert "holds no frames" in err
    err = _fails(_args(assets, tmp_path / "d", video=tmp_path / "nope.mp4"), capsys, 2)
    assert "--video" in err and "nope.mp4" in err


def test_bad_checkpoints(assets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(_args(assets, tmp_path / "a", ckpt=assets["other"]), capsys, 2)
    assert f"--ckpt {assets['other']}" in err and "does not match this architecture" in err
    no_config = tmp_path / "no_config.ckpt"
    torch.save({"state_dict": {"model.encoder.weight": torch.zeros(1)}}, no_config)
    err = _one_line(_fails(_args(assets, tmp_path / "b", ckpt=no_config), capsys, 2))
    # what the file is and what to do, with the options this command and train.py have
    assert f"--ckpt {no_config}: not an OVS-Net checkpoint" in err and "no model_config" in err
    assert f"python train.py model.model_config.checkpoint={no_config}" in err
    assert "pass model_config" not in err
    other_family = tmp_path / "other_family.ckpt"  # e.g. another Lightning project's checkpoint
    torch.save({"state_dict": {"net.w": torch.zeros(1)}, "hyper_parameters": {"lr": 0.1}}, other_family)
    err = _one_line(_fails(_args(assets, tmp_path / "e", ckpt=other_family), capsys, 2))
    assert "not an OVS-Net checkpoint: its hyper-parameters hold no model_config" in err
    err = _fails(_args(assets, tmp_path / "c", ckpt=tmp_path / "missing.ckpt"), capsys, 2)
    assert "--ckpt" in err and "no such file" in err
    err = _fails(_args(assets, tmp_path / "d", fps=0), capsys, 2)
    assert "--fps must be positive" in err


@pytest.fixture(scope="module")
def onnx_ckpt(assets: dict[str, Path]) -> Path:
    """The tiny checkpoint with MGA at 24x24 (small and quick to export)."""
    config = {**TINY_MODEL, "mga_size": 24}
    torch.manual_seed(0)
    model = build_ovsnet(**config)
    path = assets["root"] / "tiny_mga24.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {"model_config": config, "inference_settings": {"rho_reid": 1.7}},
        },
        path,
    )
    return path


def test_realtime_preset_on_onnx_runtime(
    assets: dict[str, Path], onnx_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "out"
    argv = _args(assets, out, ckpt=onnx_ckpt, preset="realtime", threads=1)  # onnx: the preset's default
    assert main([*argv, "--no-overlay", "--no-progress"]) == 0
    assert len(list((out / "masks").glob("*.png"))) == N
    assert (out / "onnx" / "model.onnx").is_file() and (out / "onnx" / "model.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["backend"], summary["preset"], summary["threads"]) == ("onnx", "realtime", 1)
    # the checkpoint's calibrated value (its old flat name) beats the preset's
    assert summary["inference"]["reid"]["rho"] == 1.7
    manifest = json.loads((out / "onnx" / "model.json").read_text())
    assert manifest["inference_settings"] == {"reid": {"rho": 1.7}}  # stored nested in the export
    assert f"{N} frames at" in capsys.readouterr().out
    # the exported model alone (no checkpoint) gives the same masks
    again = tmp_path / "again"
    argv = _args(assets, again, onnx=out / "onnx" / "model.onnx", preset="realtime", threads=1)
    argv = argv[: argv.index("--ckpt")] + argv[argv.index("--ckpt") + 2 :]
    assert main([*argv, "--no-overlay", "--no-progress"]) == 0
    for mask in sorted((out / "masks").glob("*.png")):
        np.testing.assert_array_equal(read_label_map(again / "masks" / mask.name), read_label_map(mask))
    assert (
        json.loads((again / "summary.json").read_text())["inference"]["reid"]["rho"] == 1.7
    )  # the manifest's


def test_camera_index_source(
    assets: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--video 0`` opens camera 0 through OpenCV; here camera 0 plays the synthetic mp4 and never ends."""
    import cv2

    opened: list[object] = []
    real = cv2.VideoCapture

    def camera(source: object, *args: object) -> object:
        opened.append(source)
        return real(str(assets["video"]) if source == 0 else source, *args)

    monkeypatch.setattr(cv2, "VideoCapture", camera)
    out = tmp_path / "out"
    argv = _args(assets, out, video="0", preset="realtime", backend="torch", threads=1, max_frames=3)
    assert main([*argv, "--no-progress"]) == 0
    assert 0 in opened  # an integer index, not a file called "0"
    assert sorted(p.name for p in (out / "masks").glob("*.png")) == ["00000.png", "00001.png", "00002.png"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["video"] == "0" and summary["frames"] == 3 and summary["backend"] == "torch"
    assert summary["overlay_fps"] == 25.0  # a camera is not opened a second time for its frame rate
    assert "3 frames at" in capsys.readouterr().out


def test_unavailable_camera_is_an_input_error(
    assets: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A camera that cannot be opened exits 2 with one line naming it, before any checkpoint loads."""
    import cv2

    class Closed:
        def __init__(self, *args: object) -> None:
            pass

        def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
            return False

        def read(self) -> tuple[bool, None]:
            return False, None

        def release(self) -> None:
            pass

        def get(self, prop: int) -> float:
            return 0.0

        def set(self, prop: int, value: float) -> bool:
            return False

    monkeypatch.setattr(cv2, "VideoCapture", Closed)
    err = _one_line(_fails(_args(assets, tmp_path / "a", video="7"), capsys, 2))
    assert "cannot open camera 7" in err


def test_help_documents_first_mask_formats_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "0 = background, 1..K = K objects" in text and "255 = void" in text
    assert "every 255 (non-zero) pixel is object 1" in text
    assert "2 usage or input error" in text


def test_backend_arguments(
    assets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _fails(_args(assets, tmp_path / "a", onnx=assets["ckpt"], backend="torch"), capsys, 2)
    assert "--onnx needs --backend onnx" in err
    err = _fails(_args(assets, tmp_path / "c", backend="onnx", onnx=tmp_path / "none.onnx"), capsys, 2)
    assert "--onnx" in err and "none.onnx" in err
    err = _fails(_args(assets, tmp_path / "d", video="not_there.mp4"), capsys, 2)
    assert "--video not_there.mp4" in err
    assert "--max-frames must be >= 1" in _fails(_args(assets, tmp_path / "e", max_frames=0), capsys, 2)


def test_fast_preset_is_the_default_cascade_with_the_cheapest_flow(
    assets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flows = []

    def spy(*args: object, **kwargs: object) -> object:
        flows.append(kwargs["flow"])
        return segment_video(*args, **kwargs)

    monkeypatch.setattr(video_cli, "segment_video", spy)
    out = tmp_path / "out"
    assert main([*_args(assets, out, preset="fast", threads=1), "--no-overlay"]) == 0
    (flow,) = flows
    assert (type(flow).__name__, flow.preset, flow.scale, flow.max_height) == (
        "DISFlow",
        "ultrafast",
        0.5,
        None,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["preset"] == "fast" and summary["frames"] == N
    assert summary["inference"]["detector"]["every"] == InferenceSettings().detector.every
    assert summary["inference"]["appearance"]["backbone"] == InferenceSettings().appearance.backbone
    assert summary["inference"]["mga"]["enabled"] is True


def test_no_checkpoint_segments_with_flow_and_appearance(
    assets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A first command needs no training: without --ckpt, optical flow and the appearance memory alone."""
    argv = _args(assets, tmp_path / "out")
    argv = argv[: argv.index("--ckpt")] + argv[argv.index("--ckpt") + 2 :]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["network"] is False and summary["frames"] == N
    assert summary["path_counts"]["iou"] == summary["path_counts"]["reid"] == 0
    inference = summary["inference"]
    assert inference["mga"]["enabled"] is False and inference["reid"]["enabled"] is False
    assert inference["appearance"]["backbone"] is not None
    assert "no network: flow + appearance memory" in capsys.readouterr().out
    last = read_label_map(tmp_path / "out" / "masks" / f"{N - 1:05d}.png")
    moved = np.zeros((H, W), bool)
    moved[20 : 20 + SIDE, 10 + 4 * (N - 1) : 10 + 4 * (N - 1) + SIDE] = True
    assert (last.astype(bool) & moved).sum() / (
        last.astype(bool) | moved
    ).sum() > 0.5  # it followed the square


def test_a_bad_detect_every_names_its_key(
    assets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A usage error (argparse's usage, then one error line naming the setting), exit code 2."""
    err = _fails(_args(assets, tmp_path / "out", detect_every=0), capsys, 2)
    assert err.strip().splitlines()[-1].endswith("inference.detector.every must be >= 1, got 0")
