"""Which model for this part? Each model trained on one part at its defaults, side by side.

For every MVTec category under the data root: train each model (every default: the part's own
aspect, false-reject budget 1 %), export the fp32 OpenVINO bundle, and judge it as a plant does on
the test set: image and pixel AUROC, good parts rejected and in CHECK, defects missed (OK verdicts)
and the ceiling (defects the best threshold at the same good rejected would miss); then the time
from a decoded test frame to its Result (verdict and frame-size map), batch 1, the bundles taking
turns frame by frame, and each bundle's size.

    .venv/bin/python benchmarks/model_compare.py [--data ../shared/data/mvtec] [--models dfm,cflow,patchcore]
        [--iterations 100] [--work DIR] [--name model_compare]

With --work DIR the trained runs and bundles are kept there and reused. Writes
benchmarks/results/NAME.md and .json.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import folder_mb, machine_description, trained_bundle, turns_ms, write_results

from adedge.data.datasets import open_dataset, require_test_images
from adedge.data.images import load_image
from adedge.runtime import Model
from adedge.runtime.evaluation.evaluate import evaluate_bundle
from adedge.train.models import MODEL_NAMES


def _count(metrics: dict, key: str, total: str) -> str:
    return f"{metrics[key]}/{metrics[total]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "mvtec")
    parser.add_argument("--models", default=",".join(MODEL_NAMES))
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--name", default="model_compare")
    args = parser.parse_args()
    categories = sorted(d for d in args.data.iterdir() if (d / "train" / "good").is_dir())
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        for category in categories:
            frame = load_image(require_test_images(open_dataset(category))[0].path)
            models = {}
            for model in args.models.split(","):
                info, bundle = trained_bundle(category, work / f"{category.name}-{model}", model)  # as operating_point.py names them
                models[model] = Model.load(bundle)
                rows.append({"category": category.name, "model": model, "backbone": info.backbone, "image_size": info.image_size,
                             "train_seconds": info.train_seconds, "bundle_mb": round(folder_mb(bundle), 1),
                             **evaluate_bundle(models[model], category)})
            times = turns_ms({name: (lambda m=m, frame=frame: m.predict(frame).anomaly_map) for name, m in models.items()}, args.iterations)
            for row in rows[-len(models):]:
                row["frame_shape"], row["latency_ms"] = list(frame.shape[:2]), float(np.median(times[row["model"]]))
    lines = [f"# Models side by side ({machine_description()})", "",
             f"`benchmarks/model_compare.py --models {args.models}`: every default, fp32 OpenVINO bundles; plant figures on each "
             "category's test set (good rejected = NG verdicts on good test images; defects missed = OK verdicts; ceiling = defects "
             "the best threshold rejecting no more good test images would miss); latency from a decoded test frame to its Result "
             f"with the frame-size map, batch 1, median of {args.iterations} calls, the bundles taking turns.", "",
             "| part | model | size | image / pixel AUROC | good rejected | good in CHECK | defects missed | ceiling | train | latency | bundle |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['category']} | {r['model']} | {r['image_size'][0]}x{r['image_size'][1]} | {r['image_auroc']:.4f} / "
                     f"{r['pixel_auroc']:.4f} | {_count(r, 'good_rejected', 'good')} | {_count(r, 'good_checked', 'good')} | "
                     f"{_count(r, 'defects_missed', 'defects')} | {_count(r, 'ceiling_defects_missed', 'defects')} | "
                     f"{r['train_seconds']:.0f} s | {r['latency_ms']:.1f} ms | {r['bundle_mb']} MB |")
    write_results(args.name, {"machine": machine_description(), "rows": rows}, lines)


if __name__ == "__main__":
    main()
