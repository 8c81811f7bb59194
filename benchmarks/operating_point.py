"""The verdicts at the shipped operating point, judged as a plant judges them.

For every MVTec category under the data root and every model (each at its defaults, false-reject
budget 1 %): train on train/good, export the fp32 OpenVINO bundle and run it on test/ (good rejected,
good parts in CHECK, defects missed, and the ceiling: the defects a threshold chosen on the test set
would miss at the same share of good parts rejected). Then the false-reject rate on many more good
images that neither the model nor its calibration saw: k outer folds of train/good, each scored by a
bundle trained (and calibrated, out of fold as always) on the other folds. With them the ceiling is
taken again, on all those unseen good images and the test defects: a threshold that rejects no more
of the unseen good parts than the shipped one (and one that flags, NG or CHECK, no more of them),
because 20-26 good test images cannot pin a 1 % rate: on pill 43 of 267 out-of-fold good images
score above every good test image. Last, the drift alarm: the first category's DFM bundle fed the
good test frames of the next category (another part).

    .venv/bin/python benchmarks/operating_point.py [--data ../shared/data/mvtec] [--models dfm,cflow]
        [--outer-folds dfm=5,cflow=3:1] [--work DIR] [--name operating_point]

--outer-folds MODEL=K[:R]: K outer folds, of which the first R are run (default all K): CFLOW's
training takes minutes, so by default one bundle is trained without a third of train/good.

With --work DIR the trained runs and bundles are kept there and reused. Writes
benchmarks/results/NAME.md and .json.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import machine_description, trained_bundle, write_results

from adedge.data.datasets import open_dataset
from adedge.runtime import Model, inspect_stream
from adedge.runtime.evaluation.evaluate import Evaluation, ceiling_missed, run_evaluation
from adedge.train.models import MODEL_NAMES
from adedge.train.trainer import _folds

ROOT = Path(__file__).resolve().parent
SEED = 7  # the outer folds' split (the runs' own seed stays the default)


def outer_folds(category: Path, model: str, folds: int, runs: int, work: Path) -> tuple[dict[str, int], np.ndarray]:
    """Verdicts on the train/good images of the first RUNS of FOLDS outer folds, each from a bundle
    trained without its fold, and their scores."""
    images = sorted(s.path for s in open_dataset(category).train)
    counts, scores = {"unseen_good": 0, "unseen_rejected": 0, "unseen_checked": 0}, []
    for index, held in enumerate(_folds(len(images), folds, SEED)[:runs]):
        folder = work / f"{category.name}-{model}-outer{index}of{folds}"
        data = folder / "good"
        if not data.is_dir():
            data.mkdir(parents=True)
            for n in np.setdiff1d(np.arange(len(images)), held):
                (data / f"{n:04d}{images[n].suffix}").symlink_to(images[n])
        _, bundle = trained_bundle(data, folder, model)
        results = Model.load(bundle).predict_batch([images[n] for n in held])
        labels = [r.label for r in results]
        scores += [r.score for r in results]
        counts["unseen_good"] += len(labels)
        counts["unseen_rejected"] += labels.count("NG")
        counts["unseen_checked"] += labels.count("CHECK")
    return counts, np.array(scores)


def pooled_ceilings(evaluation: Evaluation, unseen: np.ndarray, counts: dict[str, int]) -> dict[str, int]:
    """The ceiling on the test defects and every unseen good image (test/good and UNSEEN scores):
    defects missed by the best threshold that rejects no more of those good images than the
    bundles' own verdicts did (COUNTS and the test set's), and by the best that flags no more of
    them than their NG and CHECK verdicts together (each outer-fold bundle has its own band)."""
    scores = np.concatenate([evaluation.scores, unseen])
    labels = np.concatenate([evaluation.labels, np.zeros(len(unseen), bool)])
    rejected = evaluation.metrics["good_rejected"] + counts["unseen_rejected"]
    flagged = rejected + evaluation.metrics["good_checked"] + counts["unseen_checked"]
    return {"pooled_ceiling_at_rejected": ceiling_missed(scores, labels, rejected), "pooled_ceiling_at_flagged": ceiling_missed(scores, labels, flagged)}


def drift_demo(bundle: Path, other: Path) -> dict:
    """Frames of another part's good images until the drift alarm rises, through the stream."""
    frames = sorted(s.path for s in open_dataset(other).test if not s.anomalous)
    for inspection in inspect_stream(Model.load(bundle), [str(p) for p in frames]):
        if inspection.drift_raised:
            return {"bundle": str(bundle), "frames_of": other.name, "frames_until_alarm": inspection.frame + 1, "alarm": inspection.drift}
    return {"bundle": str(bundle), "frames_of": other.name, "frames_until_alarm": None, "frames": len(frames)}


def _share(count: int, total: int) -> str:
    return f"{count}/{total} ({100 * count / total:.1f} %)" if total else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data" / "mvtec")
    parser.add_argument("--models", default=",".join(MODEL_NAMES))
    parser.add_argument("--outer-folds", default="dfm=5,cflow=3:1",
                        help="MODEL=K[:R]: K outer folds of train/good per model, the first R of them run (default all; K=0: none).")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--name", default="operating_point")
    args = parser.parse_args()
    outer = {}
    for item in args.outer_folds.split(","):
        model, _, spec = item.partition("=")
        folds, _, runs = spec.partition(":")
        outer[model] = (int(folds), int(runs or folds))
    categories = sorted(d for d in args.data.iterdir() if (d / "train" / "good").is_dir())
    rows, drift = [], None
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        for category in categories:
            for model in args.models.split(","):
                info, bundle = trained_bundle(category, work / f"{category.name}-{model}", model)
                c = info.calibration
                evaluation = run_evaluation(Model.load(bundle), category)
                row = {"category": category.name, "model": f"{model} ({info.backbone}, {info.image_size[0]} px)",
                       "train_seconds": info.train_seconds, "calibration_seconds": info.calibration_seconds, "stated_false_reject": c.false_reject,
                       "stated_bound": c.false_reject_bound, "stated_good_in_check": c.good_in_check, "calibration_images": c.images,
                       **evaluation.metrics}
                folds, runs = outer.get(model, (0, 0))
                if folds > 0:
                    counts, unseen = outer_folds(category, model, folds, runs, work)
                    row |= counts | pooled_ceilings(evaluation, unseen, counts)
                rows.append(row)
                print(row, flush=True)
        if len(categories) > 1 and "dfm" in args.models.split(","):
            drift = drift_demo(work / f"{categories[0].name}-dfm" / "bundle", categories[1])
    machine = machine_description()
    lines = [
        "# Verdicts at the shipped operating point (defaults: false-reject budget 1 %, CHECK band on)",
        "",
        f"Machine: {machine}. fp32 OpenVINO bundles. Good rejected = NG; defects missed = OK (NG or CHECK count as caught); "
        "Unseen good = train/good images scored by a bundle trained and calibrated without them (outer folds) plus test/good. "
        "Ceiling = defects missed by the best threshold chosen on the test defects: on test/good, rejecting no more of its good images than "
        "the shipped threshold (test only); on all unseen good images, rejecting no more of them than the shipped NG threshold "
        "(at unseen rejected) or flagging no more of them than NG and CHECK together (at unseen flagged).",
        "",
        "| category | model | image AUROC | pixel AUROC | test good rejected | test good in CHECK | defects missed | ceiling missed (test only) "
        "| unseen good rejected | unseen good in CHECK | ceiling missed at unseen rejected | ceiling missed at unseen flagged "
        "| stated rate (95 % bound) | stated in CHECK | train s (of it calibration) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        unseen_good = r.get("unseen_good", 0) + r["good"]
        unseen = (_share(r.get("unseen_rejected", 0) + r["good_rejected"], unseen_good), _share(r.get("unseen_checked", 0) + r["good_checked"], unseen_good)) \
            if "unseen_good" in r else ("not run", "not run")
        pooled = [_share(r[key], r["defects"]) if key in r else "not run" for key in ("pooled_ceiling_at_rejected", "pooled_ceiling_at_flagged")]
        lines.append(
            f"| {r['category']} | {r['model']} | {r['image_auroc']:.4f} | {r['pixel_auroc']:.4f} | {_share(r['good_rejected'], r['good'])} | "
            f"{_share(r['good_checked'], r['good'])} | {_share(r['defects_missed'], r['defects'])} | {_share(r['ceiling_defects_missed'], r['defects'])} | "
            f"{unseen[0]} | {unseen[1]} | {pooled[0]} | {pooled[1]} | {100 * r['stated_false_reject']:.1f} % ({100 * r['stated_bound']:.1f} %) | "
            f"{100 * r['stated_good_in_check']:.1f} % | {r['train_seconds']:.0f} ({r['calibration_seconds']:.0f}) |"
        )
    if drift is not None:
        lines += ["", f"Drift alarm: the {categories[0].name} DFM bundle fed good {drift['frames_of']} frames: "
                  + (f"alarm at frame {drift['frames_until_alarm']}: \"{drift['alarm']}\"" if drift["frames_until_alarm"] else "no alarm")]
    write_results(args.name, {"machine": machine, "rows": rows, "drift": drift}, lines)


if __name__ == "__main__":
    main()
