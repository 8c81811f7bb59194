"""Golden scores: what each model's exported graph outputs on a fixed set of synthetic parts, stored
in tests/golden_scores.json. A change to the graph's arithmetic (a constant, an op, the resize)
moves them and fails here; a change meant to move them regenerates the file:

    ADEDGE_GOLDEN=write .venv/bin/python -m pytest tests/test_golden.py

The runs are conftest's (each registered model, its quick settings, the seeded synthetic plates at
128 px), so every model gets its golden scores with no edit here.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from adedge.data.datasets import open_dataset
from adedge.data.images import load_image
from adedge.runtime import Model

GOLDEN = Path(__file__).with_name("golden_scores.json")
# float32 rounding, and what another CPU's kernels (AVX2, AVX-512) change in the quick trainings
TOLERANCE = 1e-4


def _scores(bundle: Path, backend: str, synthetic: Path) -> list[float]:
    frames = [load_image(s.path) for s in open_dataset(synthetic).test]
    return [round(r.score, 7) for r in Model.load(bundle, backend).predict_batch(frames)]


def test_the_graphs_output_their_golden_scores(model_name, openvino_bundle, onnx_bundle, synthetic):
    measured = {"openvino": _scores(openvino_bundle, "openvino", synthetic), "onnx": _scores(onnx_bundle, "onnxruntime", synthetic)}
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
    if os.environ.get("ADEDGE_GOLDEN") == "write":
        GOLDEN.write_text(json.dumps(golden | {model_name: measured}, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"golden scores of {model_name} written to {GOLDEN}")
    assert model_name in golden, f"no golden scores for {model_name}: write them with ADEDGE_GOLDEN=write (see this file's docstring)"
    for graph, scores in measured.items():
        expected = np.array(golden[model_name][graph])
        moved = np.abs(np.array(scores) - expected)
        assert moved.max() <= TOLERANCE, f"{model_name} {graph}: {int((moved > TOLERANCE).sum())} of {len(scores)} scores moved, by up to {moved.max():.2e}"
