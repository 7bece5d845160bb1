"""DAVIS metrics: hand-computed cases, official conventions, errors, CSV/JSON/CLI, and agreement with the literal
per-frame reference loop of :mod:`ovsnet.metrics.reference` (a re-implementation of the official tool)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ovsnet.data.davis import load_davis
from ovsnet.data.io import DataError, read_label_map, write_frame, write_label_map
from ovsnet.metrics import (
    GLOBAL_COLUMNS,
    PER_SEQUENCE_COLUMNS,
    DavisEvaluation,
    boundary_radius,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    disk,
    evaluate_folder,
    evaluate_label_maps,
    evaluate_sequence,
    evaluate_sequences,
    seg2bmap,
)
from ovsnet.metrics import reference as oracle
from ovsnet.metrics.__main__ import main as cli_main


def square(shape=(10, 10), top=2, left=2, size=4) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def write_davis(
    root: Path,
    results: Path | None,
    sequences: dict[str, list[np.ndarray]],
    outputs: dict[str, list[np.ndarray | None]] | None = None,
    split: str = "val",
) -> None:
    """A DAVIS 2017-layout folder from label maps; ``outputs`` (None entries skipped) go to ``results``."""
    for name, labels in sequences.items():
        for t, lab in enumerate(labels):
            write_frame(
                root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg", np.zeros((*lab.shape, 3), np.uint8)
            )
            write_label_map(root / "Annotations" / "480p" / name / f"{t:05d}.png", lab)
        if outputs is not None and results is not None:
            for t, out in enumerate(outputs[name]):
                if out is not None:
                    write_label_map(results / name / f"{t:05d}.png", out)
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / f"{split}.txt").write_text("\n".join(sequences) + "\n")


# --------------------------------------------------------------------------------------------- primitives


def test_disk_is_the_skimage_disk():
    assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert disk(2).tolist() == [
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
    ]
    assert disk(8.0).shape == (17, 17) and int(disk(8.0).sum()) == 197  # lattice points with x²+y² <= 64
    assert disk(8.0).dtype == np.uint8


def test_boundary_radius():
    assert boundary_radius((480, 854)) == 8  # ceil(0.008 * 979.6)
    assert boundary_radius((1080, 1920)) == math.ceil(0.008 * math.hypot(1080, 1920))
    assert boundary_radius((480, 854), bound_th=3) == 3


def test_iou_empty_identical_and_shift():
    empty = np.zeros((10, 10), bool)
    assert db_eval_iou(empty, empty) == 1.0
    assert db_eval_iou(square(), square()) == 1.0
    assert db_eval_iou(square(), empty) == 0.0
    # 4x4 square shifted one pixel right: intersection 4x3 = 12, union 16 + 16 - 12 = 20
    assert db_eval_iou(square(), square(left=3)) == pytest.approx(12 / 20, abs=0)
    stacked = db_eval_iou(np.stack([square(), empty]), np.stack([square(left=3), empty]))
    np.testing.assert_array_equal(stacked, [0.6, 1.0])


def test_iou_explicit_void_pixels_are_left_out():
    void = np.zeros((10, 10), bool)
    void[:, 2] = True  # the ground truth's left column: 4 pixels of the union, none of the intersection
    assert db_eval_iou(square(), square(left=3), void) == pytest.approx(12 / 16, abs=0)


def test_seg2bmap_hand_cases():
    one = np.zeros((4, 4), bool)
    one[1, 1] = True
    expected = np.zeros((4, 4), bool)
    expected[0:2, 0:2] = True  # the pixel and the three whose east/south/south-east neighbour it is
    np.testing.assert_array_equal(seg2bmap(one), expected)

    # on the last row only the east neighbour counts; the bottom-right pixel is never a boundary
    last = np.zeros((3, 3), bool)
    last[2, 1] = True
    expected = np.zeros((3, 3), bool)
    expected[1, 0] = expected[1, 1] = expected[2, 0] = expected[2, 1] = True
    np.testing.assert_array_equal(seg2bmap(last), expected)

    # a mask covering the whole image has no boundary at all
    assert not seg2bmap(np.ones((5, 7), bool)).any()
    rng = np.random.default_rng(3)
    for _ in range(20):
        mask = rng.random((9, 13)) < 0.4
        np.testing.assert_array_equal(seg2bmap(mask), oracle.reference_seg2bmap(mask))


def test_boundary_f_empty_conventions():
    empty = np.zeros((10, 10), bool)
    full = np.ones((10, 10), bool)
    assert db_eval_boundary(empty, empty) == 1.0  # both boundaries empty: precision = recall = 1
    assert db_eval_boundary(square(), empty) == 0.0  # no result boundary: precision 1, recall 0
    assert db_eval_boundary(empty, square()) == 0.0  # no ground-truth boundary: precision 0, recall 1
    assert db_eval_boundary(square(), square()) == 1.0
    assert db_eval_boundary(full, full) == 1.0  # full masks have empty boundaries
    assert db_eval_boundary(full, square()) == 0.0


def test_boundary_f_hand_computed_radius_one():
    # single pixels two columns apart; radius 1 (a cross): boundaries {(3,3),(3,4),(4,3),(4,4)} and
    # {(3,5),(3,6),(4,5),(4,6)}; each side matches 2 of 4 pixels: precision = recall = 0.5, F = 0.5
    gt = np.zeros((10, 10), bool)
    res = np.zeros((10, 10), bool)
    gt[4, 4] = True
    res[4, 6] = True
    assert db_eval_boundary(gt, res, bound_th=1) == pytest.approx(0.5, abs=0)
    assert oracle.reference_f(res, gt, bound_th=1) == 0.5


def test_boundary_f_tolerance_at_davis_size():
    gt = square((480, 854), 100, 200, 120)
    assert db_eval_boundary(gt, square((480, 854), 103, 205, 120)) == 1.0  # within 8 pixels everywhere
    far = square((480, 854), 100, 230, 120)
    value = db_eval_boundary(gt, far)
    assert 0 < value < 1
    assert value == oracle.reference_f(far, gt)


def test_boundary_f_matches_reference_on_random_masks():
    rng = np.random.default_rng(0)
    for trial in range(40):
        shape = (int(rng.integers(5, 40)), int(rng.integers(5, 40)))
        gt = rng.random(shape) < rng.uniform(0.05, 0.95)
        res = rng.random(shape) < rng.uniform(0.05, 0.95)
        if trial % 5 == 0:  # blobs touching the image edges
            gt = np.zeros(shape, bool)
            gt[shape[0] // 2 :, shape[1] // 3 :] = True
        void = rng.random(shape) < 0.1 if trial % 3 == 0 else None
        bound_th = [0.008, 0.05, 2][trial % 3]
        assert db_eval_boundary(gt, res, void, bound_th) == oracle.reference_f(res, gt, void, bound_th)
        assert db_eval_iou(gt, res, void) == oracle.reference_iou(gt, res, void)


# --------------------------------------------------------------------------------------------- statistics


def test_statistics_mean_recall_decay_hand_computed():
    values = np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    mean, recall, decay = db_statistics(values)
    assert mean == pytest.approx(0.65, abs=1e-15)
    assert recall == 5 / 8  # 0.5 itself is not > 0.5
    # 8 frames: bin edges round(linspace(1, 8, 5) + 1e-10) - 1 = [0, 2, 4, 5, 7] → first bin frames 0..2,
    # last bin frames 5..7: (1 + .9 + .8)/3 - (.5 + .4 + .3)/3 = 0.5
    assert decay == pytest.approx(0.5, abs=1e-12)
    assert db_statistics(np.ones(5)) == (1.0, 1.0, 0.0)


def test_statistics_keep_the_official_uint8_bin_edges():
    values = np.linspace(1, 0, 300)
    ours = db_statistics(values)
    ref = oracle.reference_statistics(values)
    assert ours[:2] == ref[:2]
    assert math.isnan(ours[2]) and math.isnan(ref[2])  # last bin edge wraps to 43: an empty last bin
    for n in (1, 2, 3, 7, 64, 255, 256, 257, 511):
        values = np.random.default_rng(n).random(n)
        np.testing.assert_array_equal(db_statistics(values), oracle.reference_statistics(values))
    assert all(math.isnan(v) for v in db_statistics(np.zeros(0)))


# --------------------------------------------------------------------------------------------- sequences


def labels_from(*masks: np.ndarray) -> np.ndarray:
    out = np.zeros(masks[0].shape, np.uint8)
    for obj, mask in enumerate(masks, start=1):
        out[mask] = obj
    return out


def test_first_and_last_frames_are_excluded():
    good = labels_from(square())
    gt = [good] * 5
    results = [None, good, labels_from(square(left=3)), good, None]
    seq = evaluate_label_maps("s", gt, results, frame_names=["a", "b", "c", "d", "e"])
    assert seq.frame_names == ["b", "c", "d"]
    np.testing.assert_array_equal(seq.j, [[1.0, 0.6, 1.0]])
    # garbage in the first and last result frames does not matter
    bad = labels_from(square(left=6))
    again = evaluate_label_maps("s", gt, [bad, good, labels_from(square(left=3)), good, bad])
    np.testing.assert_array_equal(again.j, seq.j)


def test_object_count_from_first_frame_and_missing_objects_count_as_empty():
    a, b = square(left=0), square(left=5)
    first = labels_from(a, np.zeros_like(a), b)  # labels {1, 3}: three objects, object 2 empty
    gt = [first, first, first]
    results = [None, labels_from(a), None]  # objects 2 and 3 missing from the result
    seq = evaluate_label_maps("s", gt, results)
    assert seq.num_objects == 3 and seq.object_names == ["s_1", "s_2", "s_3"]
    np.testing.assert_array_equal(seq.j[:, 0], [1.0, 1.0, 0.0])  # object 2: empty in both → 1
    np.testing.assert_array_equal(seq.f[:, 0], [1.0, 1.0, 0.0])
    # a label that appears only after the first frame is background
    later = labels_from(a, b)
    later[0, 9] = 7
    seq = evaluate_label_maps("s", [labels_from(a), later, later], [None, labels_from(a), None])
    assert seq.num_objects == 1 and seq.j[0, 0] == 1.0


def test_void_counts_as_background_like_the_official_tool():
    gt_mask = square((12, 12), 4, 4, 4)
    ring = square((12, 12), 3, 3, 6) & ~gt_mask
    gt = labels_from(gt_mask)
    gt[ring] = 255  # void band around the object, as in DAVIS
    res = labels_from(square((12, 12), 3, 3, 6))  # the result also covers the void band
    seq = evaluate_label_maps("s", [gt, gt, gt], [None, res, None])
    # semi-supervised official evaluation passes no void mask: the band is background → 16 / 36
    assert seq.j[0, 0] == pytest.approx(16 / 36, abs=0)
    assert seq.f[0, 0] == db_eval_boundary(gt_mask, res == 1)
    # with the void mask given explicitly, the band is left out → 1
    assert db_eval_iou(gt_mask, res == 1, gt == 255) == 1.0


def test_many_objects_and_void_match_reference():
    rng = np.random.default_rng(5)
    gt = rng.integers(0, 18, size=(4, 20, 30)).astype(np.uint8)
    gt[0, 0, :18] = np.arange(18)
    gt[1:, 5, :] = 255
    res = rng.integers(0, 18, size=(4, 20, 30)).astype(np.uint8)
    seq = evaluate_label_maps("many", list(gt), list(res))
    j, f = oracle.reference_evaluate_masks(gt, res)
    np.testing.assert_array_equal(seq.j, j)
    np.testing.assert_array_equal(seq.f, f)


def test_vectorised_path_matches_reference_on_random_label_maps():
    rng = np.random.default_rng(1)
    for trial in range(12):
        frames, k = int(rng.integers(3, 9)), int(rng.integers(1, 5))
        shape = (int(rng.integers(20, 70)), int(rng.integers(20, 90)))
        gt = rng.integers(0, k + 1, size=(frames, *shape)).astype(np.uint8)
        gt = np.where(rng.random(gt.shape) < 0.05, 255, gt).astype(np.uint8)  # void pixels
        gt[0, 0, 0] = k
        res = np.where(
            rng.random(gt.shape) < 0.7, np.where(gt == 255, 0, gt), rng.integers(0, k + 1, size=gt.shape)
        ).astype(np.uint8)
        if trial % 4 == 0:  # blocky masks touching the edges, an empty frame and a full frame
            gt[:, : shape[0] // 2] = np.where(gt[:, : shape[0] // 2] > 0, 1, 0)
            res[1] = 0
            res[-2] = 1
        seq = evaluate_label_maps("r", list(gt), list(res))
        j, f = oracle.reference_evaluate_masks(gt, res)
        np.testing.assert_allclose(seq.j, j, rtol=0, atol=1e-12)
        np.testing.assert_allclose(seq.f, f, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------- errors


@pytest.fixture()
def tiny_davis(tmp_path: Path) -> tuple[Path, Path]:
    a = square((24, 32), 4, 4, 8)
    b = square((24, 32), 12, 18, 6)
    gt = [labels_from(np.roll(a, t, axis=1), np.roll(b, -t, axis=0)) for t in range(5)]
    out = (
        [None]
        + [labels_from(np.roll(a, t + 1, axis=1), np.roll(b, -t, axis=0)) for t in range(1, 4)]
        + [None]
    )
    gt2 = [labels_from(np.roll(a, 2 * t, axis=0)) for t in range(4)]
    out2 = [None, labels_from(np.roll(a, 3, axis=0)), np.zeros((24, 32), np.uint8), None]
    write_davis(
        tmp_path / "davis", tmp_path / "results", {"alpha": gt, "beta": gt2}, {"alpha": out, "beta": out2}
    )
    return tmp_path / "davis", tmp_path / "results"


def test_missing_result_frame_names_sequence_and_frame(tiny_davis):
    davis, results = tiny_davis
    (results / "alpha" / "00002.png").unlink()
    with pytest.raises(DataError, match=r"'alpha'.*'00002'.*missing"):
        evaluate_folder(davis, results, workers=1)


def test_result_size_mismatch_names_sequence_and_frame(tiny_davis):
    davis, results = tiny_davis
    write_label_map(results / "beta" / "00002.png", np.zeros((20, 32), np.uint8))
    with pytest.raises(DataError, match=r"'beta'.*'00002'.*size"):
        evaluate_folder(davis, results, workers=1)


def test_result_index_above_object_count_names_sequence_and_frame(tiny_davis):
    davis, results = tiny_davis
    bad = np.zeros((24, 32), np.uint8)
    bad[0, 0] = 3  # alpha has 2 objects
    write_label_map(results / "alpha" / "00001.png", bad)
    with pytest.raises(DataError, match=r"'alpha'.*'00001'.*index 3.*2 object"):
        evaluate_folder(davis, results, workers=1)
    with pytest.raises(DataError, match="'s'.*'00001'"):
        evaluate_label_maps("s", [labels_from(square())] * 3, [None, np.full((10, 10), 2, np.uint8), None])


# --------------------------------------------------------------------------------------------- folders


def test_folder_evaluation_matches_reference_with_workers(tmp_path):
    davis, results = tmp_path / "davis", tmp_path / "results"
    oracle.make_dataset(davis, results, sequences=3, frames=6, size=(60, 107), objects=3, seed=4)
    reference = oracle.reference_evaluate_folder(davis, results)
    for workers in (1, 2):
        evaluation = evaluate_folder(davis, results, workers=workers)
        assert oracle.max_difference(evaluation, reference) <= 1e-6
    # with another thread alive the helpers start through a forkserver instead of fork
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        evaluation = evaluate_folder(davis, results, workers=2)
    finally:
        stop.set()
        thread.join()
    assert oracle.max_difference(evaluation, reference) <= 1e-6
    subset = evaluate_folder(davis, results, sequences=["seq02", "seq00"], workers=1)
    assert [s.name for s in subset.sequences] == ["seq02", "seq00"]
    with pytest.raises(DataError, match="nope"):
        evaluate_folder(davis, results, sequences=["nope"])


def test_tables_and_global_means(tiny_davis):
    davis, results = tiny_davis
    evaluation = evaluate_sequences(load_davis(davis), results, split="val", workers=1)
    assert list(evaluation.global_results.columns) == list(GLOBAL_COLUMNS)
    assert list(evaluation.per_sequence_results.columns) == list(PER_SEQUENCE_COLUMNS)
    assert evaluation.per_sequence_results["Sequence"].tolist() == ["alpha_1", "alpha_2", "beta_1"]
    per_object = evaluation.per_object
    scores = evaluation.scores
    for column in GLOBAL_COLUMNS[1:]:
        assert scores[column] == pytest.approx(per_object[column].mean(), abs=1e-12)
    assert scores["J&F-Mean"] == (scores["J-Mean"] + scores["F-Mean"]) / 2
    beta = evaluation.sequences[1]
    assert beta.frame_names == ["00001", "00002"]
    assert beta.j[0, 1] == 0.0 and beta.f[0, 1] == 0.0  # empty result for a present object
    alpha = evaluate_sequence(load_davis(davis)[0], results)
    np.testing.assert_array_equal(alpha.j, evaluation.sequences[0].j)


def test_single_object_sequences_merge_result_labels(tiny_davis):
    davis, results = tiny_davis
    merged = [dataclasses.replace(seq, single_object=True) for seq in load_davis(davis)]
    evaluation = evaluate_sequences(merged, results, workers=1)
    assert evaluation.per_sequence_results["Sequence"].tolist() == ["alpha_1", "beta_1"]
    gt = [np.where(seq.label_map(i) > 0, 1, 0) for seq in merged[:1] for i in range(5)]
    out = [None] + [
        (read_label_map(results / "alpha" / f"{t:05d}.png") > 0).astype(np.uint8) for t in (1, 2, 3)
    ]
    expected = evaluate_label_maps("alpha", gt, [*out, None])
    np.testing.assert_array_equal(evaluation.sequences[0].j, expected.j)
    np.testing.assert_array_equal(evaluation.sequences[0].f, expected.f)


def test_write_csv_and_json(tiny_davis, tmp_path):
    davis, results = tiny_davis
    evaluation = evaluate_folder(davis, results, workers=1)
    global_path, per_sequence_path = evaluation.write_csv(results)
    assert global_path.name == "global_results-val.csv"
    assert per_sequence_path.name == "per-sequence_results-val.csv"
    table_g = pd.read_csv(global_path)
    assert list(table_g.columns) == list(GLOBAL_COLUMNS)
    for column in GLOBAL_COLUMNS:
        assert table_g.at[0, column] == pytest.approx(round(evaluation.scores[column], 3), abs=1e-9)
    table_seq = pd.read_csv(per_sequence_path)
    assert list(table_seq.columns) == list(PER_SEQUENCE_COLUMNS)
    assert table_seq["Sequence"].tolist() == ["alpha_1", "alpha_2", "beta_1"]
    np.testing.assert_allclose(table_seq["J-Mean"], evaluation.per_sequence_results["J-Mean"], atol=5e-4)
    assert not list(results.glob(".*"))  # atomic writes leave no temporary files

    data = json.loads(evaluation.to_json(tmp_path / "scores.json").read_text())
    assert data["split"] == "val"
    assert data["global"] == evaluation.scores  # full precision round trip
    assert data["per_frame"]["alpha_2"]["J"] == evaluation.per_frame["alpha_2"]["J"].tolist()
    assert data["per_frame"]["beta_1"]["frames"] == ["00001", "00002"]
    assert [row["Sequence"] for row in data["per_object"]] == ["alpha_1", "alpha_2", "beta_1"]


def test_json_turns_nan_into_null(tmp_path):
    gt = labels_from(square())
    evaluation = DavisEvaluation([evaluate_label_maps("two", [gt, gt], [None, None])])  # nothing evaluated
    data = json.loads(evaluation.to_json(tmp_path / "nan.json").read_text())
    assert data["global"]["J-Mean"] is None


def test_cli_writes_csv_and_json(tiny_davis, tmp_path, capsys):
    davis, results = tiny_davis
    out = tmp_path / "all.json"
    code = cli_main(
        [
            "--davis-root",
            str(davis),
            "--set",
            "val",
            "--results",
            str(results),
            "--json",
            str(out),
            "--workers",
            "1",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "J&F-Mean" in printed and "alpha_1" in printed
    assert (results / "global_results-val.csv").is_file()
    assert (results / "per-sequence_results-val.csv").is_file()
    expected = evaluate_folder(davis, results, workers=1).scores
    assert json.loads(out.read_text())["global"] == expected


def test_cli_reports_bad_input(tiny_davis, capsys):
    davis, results = tiny_davis
    (results / "beta" / "00001.png").unlink()
    code = cli_main(["--davis-root", str(davis), "--results", str(results)])
    assert code == 2
    assert "beta" in capsys.readouterr().err


def test_python_dash_m_entry_point(tiny_davis):
    davis, results = tiny_davis
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ovsnet.metrics",
            "--davis-root",
            str(davis),
            "--set",
            "val",
            "--results",
            str(results),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Global results for val" in proc.stdout


def test_cli_detects_a_davis_2016_layout(tmp_path, capsys):
    """The README's command on a DAVIS 2016 release (frame lists, no ImageSets/2017) needs no --year."""
    from tests.davis_fixtures import build_davis2016_frame_lists

    davis, results = tmp_path / "davis16", tmp_path / "results"
    build_davis2016_frame_lists(davis, {"cows": 4}, {"val": ["cows"]})
    for sequence in load_davis(davis, year=2016, split="val"):
        for index in range(len(sequence)):
            write_label_map(results / "cows" / f"{index:05d}.png", sequence.label_map(index))
    code = cli_main(["--davis-root", str(davis), "--set", "val", "--results", str(results), "--workers", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "DAVIS 2016 layout" in captured.err
    scores = pd.read_csv(results / "global_results-val.csv")
    assert scores.loc[0, "J&F-Mean"] == 1.0  # the ground truth itself, scored the 2016 way


def test_cli_refuses_to_overwrite_earlier_csvs_unless_asked(tiny_davis, capsys):
    davis, results = tiny_davis
    args = ["--davis-root", str(davis), "--set", "val", "--results", str(results), "--workers", "1"]
    assert cli_main(args) == 0
    earlier = (results / "global_results-val.csv").read_text()
    (results / "global_results-val.csv").write_text(earlier + "# kept\n")
    capsys.readouterr()
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "global_results-val.csv" in err and "--overwrite" in err
    assert (results / "global_results-val.csv").read_text().endswith("# kept\n")
    assert cli_main([*args, "--overwrite"]) == 0
    assert (results / "global_results-val.csv").read_text() == earlier
