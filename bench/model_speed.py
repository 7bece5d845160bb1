"""Model speed: OVSNet.detect per frame, the share of the Re-ID head and MGA, vs a bare torchvision Mask R-CNN.

Everything runs in one process on the same frames, so the ratios hold on any machine. Random weights: speed
does not depend on them (the detector keeps its configured 100 detections per image).
Target: Re-ID head (all detections) + MGA (up to 4 objects) <= 15% of the bare detector's time.

    python bench/model_speed.py             # 480x854, resnet50 + mobilenet_v3_large, MGA presets
    python bench/model_speed.py --quick     # tiny run proving the script works
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from ovsnet.data.io import atomic_path
from ovsnet.models.ovsnet import Detections, build_ovsnet

ROOT = Path(__file__).resolve().parents[1]
TARGET_SHARE = 0.15


def _timed(fns: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds of each of ``fns`` over ``repeats`` rounds after ``warmup`` rounds.

    The calls are interleaved (each round calls every function once), so a drift of the machine's speed
    during the run (frequency scaling, another process) hits all of them alike and the ratios hold. Timing
    one model after the other let the ratio move between 0.86 and 1.27 on these cores.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def keep_all_proposals(detector: torch.nn.Module) -> torch.nn.Module:
    """Switch off the RPN's NMS so every detector keeps its full ``post_nms_top_n`` (1000) proposals.

    With random weights the number of proposals that survive the RPN's NMS depends on the initialisation:
    314 for the bare model and 881 for OVS-Net's detector (BN in the FPN) at 480x854. The box head's cost is
    proportional to it, which made ``detect`` look 1.26x the bare forward. A trained RPN keeps close to the
    full 1000, so both run that worst case here.
    """
    detector.rpn.nms_thresh = 1.0
    return detector


def bare_detector(image: torch.Tensor) -> Callable[[], object]:
    """One forward of a bare torchvision ``maskrcnn_resnet50_fpn`` of the image's size (the reference)."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    h, w = image.shape[-2:]
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=h, max_size=w).eval()
    keep_all_proposals(model)
    return lambda: model([image])


def _object_boxes(
    det: Detections, image: torch.Tensor, objects: int
) -> tuple[object, torch.Tensor, torch.Tensor]:
    """The features of a detect pass and ``objects`` boxes with 28x28 probabilities to refine."""
    h, w = image.shape[-2:]
    if len(det) >= objects:
        return det.features, det.boxes[:objects], det.mask_probs[:objects]
    side = min(h, w) / 4
    boxes = torch.tensor(
        [[i * side, i * side / 2, i * side + side, i * side / 2 + side] for i in range(objects)]
    )
    return det.features, boxes, torch.rand(objects, 28, 28)


def ovsnet_figures(
    backbone: str, image: torch.Tensor, bare: Callable[[], object], objects: int, repeats: int, warmup: int
) -> dict:
    h, w = image.shape[-2:]
    torch.manual_seed(0)
    model = build_ovsnet(backbone=backbone, weights=None, min_size=h, max_size=w).eval()
    keep_all_proposals(model.detector)
    with torch.inference_mode():
        dets = model.detect([image])[0]
        features, boxes, probs = _object_boxes(dets, image, objects)
        t = _timed(
            {
                "bare": bare,
                "detect": lambda: model.detect([image]),
                "reid": lambda: model.embed(dets.features, dets.boxes),
                "mga": lambda: model.refine_box_masks(features, boxes, probs),
            },
            repeats,
            warmup,
        )
    return {
        "bare_s": t["bare"],
        "detect_s": t["detect"],
        "reid_s": t["reid"],
        "mga_s": t["mga"],
        "detections": len(dets),
        "mga_objects": int(len(boxes)),
        "detect_ratio": t["detect"] / t["bare"],
        "heads_share": (t["reid"] + t["mga"]) / t["bare"],
    }


def mga_preset_cost(image: torch.Tensor, bare: Callable[[], object], repeats: int, warmup: int) -> dict:
    """MGA seconds per object for the default (fast) widths and the wide, paper-like preset (resnet50 FPN)."""
    h, w = image.shape[-2:]
    out = {}
    for preset in ("fast", "paper"):
        torch.manual_seed(0)
        model = build_ovsnet(
            backbone="resnet50", weights=None, min_size=h, max_size=w, reid=False, mga_preset=preset
        ).eval()
        with torch.inference_mode():
            f, b, p = _object_boxes(model.detect([image])[0], image, 4)
            t = _timed(
                {
                    "bare": bare,
                    "four": lambda m=model, f=f, b=b, p=p: m.refine_box_masks(f, b, p),
                    "one": lambda m=model, f=f, b=b[:1], p=p[:1]: m.refine_box_masks(f, b, p),
                },
                repeats,
                warmup,
            )
        out[preset] = {
            "one_object_s": t["one"],
            "four_objects_s": t["four"],
            "per_object_s": t["four"] / 4,
            "per_object_ratio": t["four"] / 4 / t["bare"],
            "bare_s": t["bare"],
            "params": sum(q.numel() for q in model.mga.parameters()),
        }
    return out


def markdown(r: dict) -> str:
    lines = [
        f"At {r['height']}x{r['width']}, {r['threads']} torch threads; each row's bare "
        "`maskrcnn_resnet50_fpn` forward is timed interleaved with that row's calls.",
        "",
        "| backbone | bare ms | detect ms | detections | Re-ID head ms | MGA ms (objects) | detect / bare | "
        "(Re-ID + MGA) / bare | target <= 15% |",
        "|---" * 9 + "|",
    ]
    for name, m in r["ovsnet"].items():
        lines.append(
            f"| {name} | {1e3 * m['bare_s']:.0f} | {1e3 * m['detect_s']:.0f} | {m['detections']} | "
            f"{1e3 * m['reid_s']:.1f} | "
            f"{1e3 * m['mga_s']:.1f} ({m['mga_objects']}) | {m['detect_ratio']:.2f} | "
            f"{100 * m['heads_share']:.1f}% | {'yes' if m['heads_share'] <= TARGET_SHARE else 'no'} |"
        )
    lines += [
        "",
        "MGA cost per object (ResNet-50 FPN features):",
        "",
        "| preset | params | 1 object ms | 4 objects ms | per object ms | per object / bare |",
        "|---" * 6 + "|",
    ]
    for preset, m in r["mga_presets"].items():
        lines.append(
            f"| {preset} | {m['params'] / 1e6:.2f} M | {1e3 * m['one_object_s']:.1f} | "
            f"{1e3 * m['four_objects_s']:.1f} | {1e3 * m['per_object_s']:.1f} | "
            f"{100 * m['per_object_ratio']:.1f}% |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small frames, few repeats: proves the script runs"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "model_speed.json")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--backbones", default="resnet50,mobilenet_v3_large")
    args = parser.parse_args(argv)
    if args.quick:
        args.height, args.width, args.repeats, args.warmup = 120, 214, 2, 1
    torch.manual_seed(0)
    image = torch.rand(3, args.height, args.width)
    bare = bare_detector(image)
    results: dict = {
        "height": args.height,
        "width": args.width,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "quick": args.quick,
        "ovsnet": {},
    }
    for backbone in args.backbones.split(","):
        results["ovsnet"][backbone] = ovsnet_figures(
            backbone, image, bare, args.objects, args.repeats, args.warmup
        )
    results["mga_presets"] = mga_preset_cost(image, bare, args.repeats, args.warmup)
    results["meets_target"] = all(m["heads_share"] <= TARGET_SHARE for m in results["ovsnet"].values())
    results["markdown"] = markdown(results)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    table = Table(title=f"model speed {args.height}x{args.width}")
    for column in ("backbone", "detect ms", "Re-ID ms", "MGA ms", "(Re-ID+MGA)/bare"):
        table.add_column(column)
    for name, m in results["ovsnet"].items():
        table.add_row(
            name,
            f"{1e3 * m['detect_s']:.0f}",
            f"{1e3 * m['reid_s']:.1f}",
            f"{1e3 * m['mga_s']:.1f}",
            f"{100 * m['heads_share']:.1f}%",
        )
    Console().print(table)
    return results


if __name__ == "__main__":
    main()
