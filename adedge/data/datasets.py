"""Dataset readers: the MVTec AD layout and a plain folder of good images.

MVTec AD layout (ROOT may be the category folder itself, or hold it as ROOT/CATEGORY):
    train/good/*.png, test/<defect or good>/*.png, ground_truth/<defect>/<name>_mask.png
Plain folder layout:
    DIR/*.png (good images), optional DIR/<defect>/*.png, optional DIR/masks/<defect>/<name>[_mask].png
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from adedge.data.images import is_image_file, load_mask, resize_mask
from adedge.errors import AdedgeError

GOOD = "good"
MASKS_FOLDER = "masks"


@dataclass(frozen=True)
class Sample:
    """One image: its path, whether it is anomalous, its defect type and its mask file if any."""

    path: Path
    anomalous: bool
    defect: str = GOOD
    mask_path: Path | None = None


@dataclass(frozen=True)
class Dataset:
    """Good training images and (possibly empty) labelled test images of one category."""

    root: Path
    category: str
    layout: str
    train: list[Sample]
    test: list[Sample]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def _find_mask(folder: Path, image: Path) -> Path | None:
    for name in (f"{image.stem}_mask.png", f"{image.stem}.png"):
        if (folder / name).is_file():
            return folder / name
    return None


def _category_root(root: Path, category: str | None) -> Path | None:
    """The MVTec category folder for ROOT and CATEGORY, or None if ROOT is not MVTec-shaped."""
    if category:
        candidate = root / category
        if not candidate.is_dir():
            raise AdedgeError(f"category folder not found: {candidate}")
        return candidate
    return root if (root / "train").is_dir() else None


def _read_mvtec(folder: Path) -> Dataset:
    train_dir = folder / "train" / GOOD
    if not train_dir.is_dir():
        raise AdedgeError(f"MVTec layout expects good training images in {train_dir}, which does not exist")
    test: list[Sample] = []
    test_dir = folder / "test"
    if test_dir.is_dir():
        for defect_dir in sorted(d for d in test_dir.iterdir() if d.is_dir()):
            defect = defect_dir.name
            masks = folder / "ground_truth" / defect
            for image in _images_in(defect_dir):
                if defect == GOOD:
                    test.append(Sample(image, False))
                else:
                    test.append(Sample(image, True, defect, _find_mask(masks, image) if masks.is_dir() else None))
    return Dataset(folder, folder.name, "mvtec", [Sample(p, False) for p in _images_in(train_dir)], test)


def _read_plain(folder: Path) -> Dataset:
    good = _images_in(folder)
    if (folder / GOOD).is_dir():
        good += _images_in(folder / GOOD)
    test = [Sample(p, False) for p in good]
    for defect_dir in sorted(d for d in folder.iterdir() if d.is_dir() and d.name not in (GOOD, MASKS_FOLDER)):
        masks = folder / MASKS_FOLDER / defect_dir.name
        for image in _images_in(defect_dir):
            mask = _find_mask(masks, image) if masks.is_dir() else None
            test.append(Sample(image, True, defect_dir.name, mask))
    return Dataset(folder, folder.name, "folder", [Sample(p, False) for p in good], test)


def open_dataset(root: Path | str, category: str | None = None) -> Dataset:
    """Read ROOT as an MVTec category (ROOT/CATEGORY or ROOT itself) or as a plain image folder."""
    root = Path(root)
    if not root.is_dir():
        raise AdedgeError(f"data folder not found: {root}")
    mvtec = _category_root(root, category)
    return _read_mvtec(mvtec) if mvtec is not None else _read_plain(root)


def require_train_images(dataset: Dataset) -> list[Sample]:
    """The good training images, or an error naming where they were expected."""
    if not dataset.train:
        where = dataset.root / "train" / GOOD if dataset.layout == "mvtec" else dataset.root
        raise AdedgeError(f"no good training images found in {where}")
    return dataset.train


def require_test_images(dataset: Dataset) -> list[Sample]:
    """Labelled images with both good and anomalous examples, as evaluation needs."""
    anomalous = sum(s.anomalous for s in dataset.test)
    good = len(dataset.test) - anomalous
    if not anomalous or not good:
        raise AdedgeError(
            f"{dataset.root} needs both good and anomalous labelled images; found {good} good and {anomalous} anomalous"
        )
    return dataset.test


def has_masks(samples: list[Sample]) -> bool:
    """True if every anomalous sample has a mask, False if none has; a set with some missing is
    refused, so pixel metrics are never silently dropped (or computed on part of the set)."""
    anomalous = [s for s in samples if s.anomalous]
    missing = [s for s in anomalous if s.mask_path is None]
    if missing and len(missing) < len(anomalous):
        raise AdedgeError(
            f"{len(missing)} of {len(anomalous)} defect images have no mask, e.g. {missing[0].path}: "
            "add the missing masks (or remove all masks to evaluate whole images only)"
        )
    return not missing


def ground_truth(sample: Sample, size: tuple[int, int]) -> np.ndarray:
    """The sample's defect mask at SIZE (H, W): all False for a good image."""
    if not sample.anomalous or sample.mask_path is None:
        return np.zeros(size, bool)
    with Image.open(sample.path) as image:  # reads the header only
        image_size = (image.height, image.width)
    return resize_mask(load_mask(sample.mask_path, image_size), size)
