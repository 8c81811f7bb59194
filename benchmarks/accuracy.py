"""Accuracy per category, model and precision, measured through the exported bundle and the runtime.

For every MVTec category under the data root: train DFM and CFLOW (efficientnet_lite0, defaults),
export each precision, and evaluate the bundle on the category's test set (image AUROC, pixel AUROC,
F1-max, PRO). An INT8 export that its accuracy control refuses is listed as refused, with the reason.

    .venv/bin/python benchmarks/accuracy.py [--data ../shared/data/mvtec] [--models dfm,cflow]

Writes benchmarks/results/accuracy.md and .json.
"""

import argparse
import tempfile
from pathlib import Path

from common import machine_description, write_results

from adedge.errors import AdedgeError
from adedge.export.exporter import export_bundle
from adedge.runtime import Model
from adedge.runtime.evaluate import evaluate_bundle
from adedge.train.trainer import TrainConfig, train

ROOT = Path(__file__).resolve().parent
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# anomalib's published figures for the same categories, as quoted in our issues
ANOMALIB = {
    ("bottle", "dfm"): "image AUROC 0.994 (ResNet-18), 0.999 (WRN-50)",
    ("bottle", "cflow"): "image AUROC 1.000, pixel AUROC 0.981 (WRN-50)",
}


def measure(category: Path, model: str, work: Path) -> list[dict]:
    run = work / f"{category.name}-{model}"
    info = train(TrainConfig(category, run, model=model))
    rows = []
    for precision in PRECISIONS:
        bundle = work / f"{run.name}-{precision}"
        row = {"category": category.name, "model": model, "precision": precision, "train_seconds": info["train_seconds"]}
        try:
            metadata = export_bundle(run, bundle, "openvino", precision)
        except AdedgeError as exc:
            rows.append({**row, "refused": str(exc)})
            continue
        if "quantization" in metadata:
            row["precision"] = f"int8 ({metadata['quantization']['mode']})"
        rows.append({**row, **evaluate_bundle(Model.load(bundle), category)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data" / "mvtec")
    parser.add_argument("--models", default="dfm,cflow")
    args = parser.parse_args()
    categories = sorted(d for d in args.data.iterdir() if (d / "train" / "good").is_dir())
    if not categories:
        raise SystemExit(f"no MVTec categories under {args.data}")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for category in categories:
            for model in args.models.split(","):
                rows += measure(category, model, Path(work))
    machine = machine_description()
    lines = [
        "# Accuracy through the exported bundle (efficientnet_lite0, 256x256, OpenVINO)",
        "",
        f"Machine: {machine}. Thresholds calibrated on held-back good training images.",
        "",
        "| category | model | precision | image AUROC | pixel AUROC | F1-max | PRO | anomalib (published) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        published = ANOMALIB.get((r["category"], r["model"]), "")
        if "refused" in r:
            lines.append(f"| {r['category']} | {r['model']} | {r['precision']} | refused: {r['refused']} | | | | {published} |")
        else:
            lines.append(
                f"| {r['category']} | {r['model']} | {r['precision']} | {r['image_auroc']:.4f} | {r['pixel_auroc']:.4f} | "
                f"{r['image_f1_max']:.4f} | {r['pro']:.4f} | {published} |"
            )
    write_results("accuracy", {"machine": machine, "rows": rows}, lines)


if __name__ == "__main__":
    main()
