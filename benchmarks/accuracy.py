"""Accuracy per category, model and precision, measured through the exported bundle and the runtime.

For every MVTec category under the data root: train DFM and CFLOW (every default),
export each precision, and evaluate the bundle on the category's test set (image AUROC, pixel AUROC,
F1-max, PRO, and at the shipped threshold F1, good parts rejected and defects missed). An INT8 export that its accuracy control refuses is listed as refused, with the reason.

    .venv/bin/python benchmarks/accuracy.py [--data ../shared/data/mvtec] [--models dfm,cflow]
        [--precisions fp32,int8] [--resize antialias|bilinear] [--name accuracy] [--work DIR]

With --work DIR the trained runs are kept there and reused. Writes benchmarks/results/NAME.md and
.json (default accuracy).
"""

import argparse
from pathlib import Path

from common import machine_description, per_category, write_results

from adedge.choices import Precision, Resize
from adedge.errors import AdedgeError
from adedge.export.exporter import export_bundle
from adedge.formats import RUN_FORMAT_VERSION, RunInfo, read_record
from adedge.runtime import Model
from adedge.runtime.evaluation.evaluate import evaluate_bundle
from adedge.train.models import MODEL_NAMES
from adedge.train.trainer import TrainConfig, train

ROOT = Path(__file__).resolve().parent
# anomalib's published figures for the same categories, as quoted in our issues
ANOMALIB = {
    ("bottle", "dfm"): "image AUROC 0.994 (ResNet-18), 0.999 (WRN-50)",
    ("bottle", "cflow"): "image AUROC 1.000, pixel AUROC 0.981 (WRN-50)",
    ("pill", "cflow"): "image AUROC 0.924, pixel AUROC 0.983 (WRN-50)",
}


def measure(category: Path, model: str, work: Path, precisions: list[str], resize: str) -> list[dict]:
    run = work / f"{category.name}-{model}-{resize}"
    if (run / "run.json").is_file():
        info = read_record(RunInfo, run / "run.json", RUN_FORMAT_VERSION)
    else:
        info = train(TrainConfig(category, run, model=model, resize=resize))
    rows = []
    for precision in precisions:
        bundle = work / f"{run.name}-{precision}"
        row = {"category": category.name, "model": f"{model} ({info.backbone}, {info.image_size[0]} px)", "resize": resize,
               "precision": precision, "train_seconds": info.train_seconds}
        try:
            metadata = export_bundle(run, bundle, "openvino", precision)
        except AdedgeError as exc:
            rows.append({**row, "refused": str(exc)})
            continue
        if metadata.quantization is not None:
            row["precision"] = f"int8 ({metadata.quantization.mode})"
        rows.append({**row, **evaluate_bundle(Model.load(bundle), category)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data" / "mvtec")
    parser.add_argument("--models", default=",".join(MODEL_NAMES))
    parser.add_argument("--precisions", default=",".join(Precision))
    parser.add_argument("--resize", default="antialias", choices=list(Resize), help="How the graph resizes frames.")
    parser.add_argument("--name", default="accuracy", help="Results file name (without suffix).")
    parser.add_argument("--work", type=Path, default=None, help="Keep and reuse trained runs here.")
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    rows = per_category(args.data, args.models, args.work, lambda category, model, work: measure(category, model, work, precisions, args.resize))
    machine = machine_description()
    lines = [
        f"# Accuracy through the exported bundle (each model's defaults, {args.resize} resize, OpenVINO)",
        "",
        f"Machine: {machine}. Thresholds calibrated on out-of-fold scores of the good training images (never test images); "
        "good rejected and defects missed at that shipped threshold; train time in s.",
        "",
        "| category | model | precision | image AUROC | pixel AUROC | PRO | F1-max | F1 at threshold | good rejected | defects missed | train s | anomalib (published) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        published = ANOMALIB.get((r["category"], r["model"].split()[0]), "")
        if "refused" in r:
            lines.append(f"| {r['category']} | {r['model']} | {r['precision']} | refused: {r['refused']} | | | | | | | | {published} |")
        else:
            lines.append(
                f"| {r['category']} | {r['model']} | {r['precision']} | {r['image_auroc']:.4f} | {r['pixel_auroc']:.4f} | {r['pro']:.4f} | "
                f"{r['image_f1_max']:.4f} | {r['image_f1']:.4f} | {r['good_rejected']}/{r['images'] - r['anomalous']} | "
                f"{r['defects_missed']}/{r['anomalous']} | {r['train_seconds']:.0f} | {published} |"
            )
    write_results(args.name, {"machine": machine, "rows": rows}, lines)


if __name__ == "__main__":
    main()
