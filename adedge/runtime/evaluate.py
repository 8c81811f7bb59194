"""`adedge eval`: run a bundle over a labelled folder and compute the metrics on what ships."""

from pathlib import Path

import numpy as np

from adedge.data.datasets import ground_truth, open_dataset, require_test_images
from adedge.metrics import evaluate
from adedge.progress import Track, no_progress
from adedge.runtime.bundle import THRESHOLD
from adedge.runtime.model import Model

def evaluate_bundle(
    model: Model,
    data: Path | str,
    category: str | None = None,
    batch_size: int = 8,
    track: Track = no_progress,
) -> dict[str, float]:
    """Image AUROC, pixel AUROC, F1-max, F1 at the bundle's threshold and PRO; frames go in as they
    are, maps are compared with the masks at the model's size (the anomaly map's)."""
    samples = require_test_images(open_dataset(data, category))
    size = model.input_size
    batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    maps, scores, masks = [], [], []
    for batch in track(batches, "evaluating"):
        results = model.predict_batch([s.path for s in batch], batch_size)
        maps += [r.model_map for r in results]
        scores += [r.score for r in results]
        masks += [ground_truth(s, size) for s in batch]
    labels = np.array([s.anomalous for s in samples])
    has_masks = all(s.mask_path for s in samples if s.anomalous)
    metrics = evaluate(np.array(scores), labels, np.stack(maps) if has_masks else None, np.stack(masks) if has_masks else None, THRESHOLD)
    return {**metrics, "images": len(samples), "anomalous": int(labels.sum())}
