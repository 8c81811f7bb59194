"""`adedge demo`: the three stages end to end on synthetic parts that need nothing downloaded:
generate plates, train each model, export OpenVINO bundles, evaluate and time them, draw overlays."""

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from adedge.data.datasets import open_dataset
from adedge.data.images import load_image, save_image
from adedge.data.synthetic import generate_synthetic
from adedge.export.exporter import export_bundle
from adedge.fileio import check_output_folder
from adedge.progress import Track
from adedge.runtime import Model
from adedge.runtime.evaluation.bench import bench
from adedge.runtime.evaluation.evaluate import evaluate_bundle
from adedge.runtime.line.overlay import overlay
from adedge.train.trainer import TrainConfig, check_seed, train

DEMO_SIZE = 256  # the synthetic plates' own size: the demo stays a couple of minutes on any model's default
DEMO_MARKER = ".adedge-demo"  # marks a demo's output folder, which a later demo may write over
# the models that train in seconds on the plates; CFLOW's flows take minutes (train it with --model cflow)
DEMO_MODELS = ("dfm", "patchcore")
COLUMNS = ("model", "train s", "image AUROC", "pixel AUROC", "PRO", "p50 ms (batch 1)")


def run_demo(out: Path, seed: int, track: Track, say: Callable[[str], None],
             status: Callable[[str], AbstractContextManager]) -> list[tuple[str, ...]]:
    """Generate plates in OUT, then train, export, evaluate, time and draw each model; returns a row
    of COLUMNS per model. SAY prints a line, STATUS shows a spinner while a step runs."""
    check_seed(seed)
    check_output_folder(out, DEMO_MARKER)
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).touch()
    with status("generating synthetic plates"):
        data = generate_synthetic(out / "data", seed=seed)
    say(f"synthetic MVTec-layout dataset: {data}")
    samples = open_dataset(data).test[::5]
    rows = []
    for name in DEMO_MODELS:
        run, bundle = out / "runs" / name, out / "bundles" / f"{name}-openvino"
        info = train(TrainConfig(data, run, model=name, image_size=DEMO_SIZE), track)
        say(f"{name}: trained in {info.train_seconds:.1f} s ({info.calibration.method}): {run}")
        with status(f"exporting {name} to OpenVINO IR"):
            export_bundle(run, bundle, "openvino")
        say(f"{name}: exported the OpenVINO bundle: {bundle}")
        model = Model.load(bundle)
        metrics = evaluate_bundle(model, data, track=track)
        with status(f"timing {name}"):
            figures = bench(model, 1, 100)
        rows.append((name, f"{info.train_seconds:.1f}", f"{metrics['image_auroc']:.4f}", f"{metrics['pixel_auroc']:.4f}",
                     f"{metrics['pro']:.4f}", f"{figures['p50_ms']:.2f}"))
        predictions = out / "predictions" / name
        predictions.mkdir(parents=True, exist_ok=True)
        for sample in samples:
            image = load_image(sample.path)
            result = model.predict(image)
            save_image(predictions / f"{sample.defect}_{sample.path.stem}_{result.label}.png", overlay(image, result))
    return rows
