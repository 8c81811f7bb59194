"""Do clients that know nothing of adedge get adedge's verdicts? Every test image of each category.

For each MVTec category and registered model: train with every default, export the OpenVINO IR and
the ONNX file, and inspect every test image, as it comes, through
- adedge's runtime (OpenVINO, f32: the reference),
- plain OpenVINO compiling model.xml with its default settings (bf16 arithmetic on a CPU with bf16
  units), plain OpenVINO reading model.onnx with default settings, and ONNX Runtime on model.onnx,
- OpenVINO Model API 0.4.7 (`Model.create_model("model.xml")`, nothing configured).
Counts the images whose label agrees with adedge's and the largest score difference, per client.
An IR exported at bf16 precision (no f32 marks: bf16 arithmetic on purpose) is shown for contrast.

    .venv/bin/python benchmarks/clients.py [--data ../shared/data/mvtec] [--work DIR]

With --work DIR the trained runs are kept there and reused (delete DIR to retrain). Writes
benchmarks/results/clients.md and .json.
"""

import argparse
from pathlib import Path

import numpy as np
import onnxruntime as ort
import openvino as ov
from common import machine_description, per_category, write_results

from adedge.data.datasets import open_dataset
from adedge.data.images import load_image
from adedge.export.exporter import export_bundle
from adedge.runtime import Model
from adedge.train.models import MODEL_NAMES
from adedge.train.trainer import TrainConfig, train

ROOT = Path(__file__).resolve().parent


def plain_openvino(model_file: Path):
    compiled = ov.Core().compile_model(str(model_file), "CPU")  # OpenVINO's defaults, nothing else
    score, label = compiled.output("pred_score"), compiled.output("pred_label")

    def run(frame: np.ndarray) -> tuple[float, bool]:
        results = compiled(frame[None])
        return float(results[score][0]), bool(results[label][0])

    return run, compiled.get_property("INFERENCE_PRECISION_HINT").to_string()


def plain_onnxruntime(model_file: Path):
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])

    def run(frame: np.ndarray) -> tuple[float, bool]:
        score, label = session.run(["pred_score", "pred_label"], {"image": frame[None]})
        return float(score[0]), bool(label[0])

    return run


def model_api(model_file: Path):
    from model_api.models import Model as ModelAPI

    client = ModelAPI.create_model(str(model_file))

    def run(frame: np.ndarray) -> tuple[float, bool]:
        result = client(frame)
        return float(result.pred_score), result.pred_label == "True"

    return run


def measure(category: Path, model: str, work: Path) -> list[dict]:
    run = work / f"{category.name}-{model}"
    if not (run / "run.json").is_file():
        train(TrainConfig(category, run, model=model))
    bundles = {name: work / f"{run.name}-{name}" for name in ("openvino", "onnx", "bf16")}
    for name, bundle in bundles.items():
        export_bundle(run, bundle, "onnx" if name == "onnx" else "openvino", "bf16" if name == "bf16" else "fp32")
    reference = Model.load(bundles["openvino"])
    default_ir, default_precision = plain_openvino(bundles["openvino"] / "model.xml")
    default_onnx, _ = plain_openvino(bundles["onnx"] / "model.onnx")
    default_bf16, _ = plain_openvino(bundles["bf16"] / "model.xml")
    clients = {
        f"OpenVINO defaults ({default_precision}), model.xml": default_ir,
        "OpenVINO Model API 0.4.7, model.xml": model_api(bundles["openvino"] / "model.xml"),
        "ONNX Runtime, model.onnx": plain_onnxruntime(bundles["onnx"] / "model.onnx"),
        f"OpenVINO defaults ({default_precision}), model.onnx": default_onnx,
        f"OpenVINO defaults ({default_precision}), bf16 IR (contrast)": default_bf16,
    }
    samples = open_dataset(category).test
    agree = dict.fromkeys(clients, 0)
    worst = dict.fromkeys(clients, 0.0)
    for sample in samples:
        frame = load_image(sample.path)
        ours = reference.predict(frame)
        for name, client in clients.items():
            score, anomalous = client(frame)
            agree[name] += anomalous == ours.anomalous
            worst[name] = max(worst[name], abs(score - ours.score))
    return [
        {"category": category.name, "model": model, "client": name, "images": len(samples), "labels_agree": agree[name], "max_score_difference": worst[name]}
        for name in clients
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data" / "mvtec")
    parser.add_argument("--work", type=Path, default=None, help="Keep and reuse trained runs here.")
    parser.add_argument("--models", default=",".join(MODEL_NAMES))
    args = parser.parse_args()
    rows = per_category(args.data, args.models, args.work, measure)
    machine = machine_description()
    lines = [
        "# Verdicts of clients that know nothing of adedge, against adedge's runtime (OpenVINO f32)",
        "",
        f"Machine: {machine}. Every test image, frames as they come (the graph resizes them);",
        "efficientnet_lite0, every training default.",
        "",
        "| category | model | client | labels agreeing | max score difference |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['category']} | {r['model']} | {r['client']} | {r['labels_agree']} / {r['images']} | {r['max_score_difference']:.2e} |")
    write_results("clients", {"machine": machine, "rows": rows}, lines)


if __name__ == "__main__":
    main()
