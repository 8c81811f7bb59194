import numpy as np
import pytest
from PIL import Image

from adedge.data.datasets import open_dataset, require_test_images, require_train_images
from adedge.data.images import load_image, load_mask, resize_map, resize_mask
from adedge.data.synthetic import DEFECTS, generate_synthetic
from adedge.errors import AdedgeError


def _png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_mvtec_layout_reads_labels_and_masks(synthetic):
    dataset = open_dataset(synthetic)
    assert dataset.layout == "mvtec" and dataset.category == "plate"
    assert len(dataset.train) == 30 and not any(s.anomalous for s in dataset.train)
    anomalous = [s for s in dataset.test if s.anomalous]
    assert len(anomalous) == 4 * len(DEFECTS) and len(dataset.test) == 6 + 4 * len(DEFECTS)
    assert all(s.mask_path is not None and s.mask_path.name == f"{s.path.stem}_mask.png" for s in anomalous)
    assert {s.defect for s in anomalous} == set(DEFECTS)


def test_mvtec_root_with_category(synthetic):
    assert open_dataset(synthetic.parent, "plate").root == synthetic
    with pytest.raises(AdedgeError, match="category folder not found"):
        open_dataset(synthetic.parent, "cable")


def test_plain_folder_layout(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        _png(tmp_path / f"{i}.png", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    _png(tmp_path / "dent" / "a.png", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    _png(tmp_path / "masks" / "dent" / "a_mask.png", np.zeros((20, 30), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "folder"
    assert [s.path.name for s in dataset.train] == ["0.png", "1.png", "2.png"]
    bad = [s for s in dataset.test if s.anomalous]
    assert len(bad) == 1 and bad[0].defect == "dent" and bad[0].mask_path.name == "a_mask.png"


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(AdedgeError, match="data folder not found"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "train" / "good").mkdir(parents=True)
    with pytest.raises(AdedgeError, match="no good training images found in .*train/good"):
        require_train_images(open_dataset(tmp_path))
    with pytest.raises(AdedgeError, match="0 good and 0 anomalous"):
        require_test_images(open_dataset(tmp_path))


def test_mvtec_without_train_good(tmp_path):
    (tmp_path / "train" / "bad").mkdir(parents=True)
    with pytest.raises(AdedgeError, match="train/good"):
        open_dataset(tmp_path)


def test_corrupt_truncated_and_non_image_files_name_the_file(tmp_path, synthetic):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x00not a png at all" * 10)
    with pytest.raises(AdedgeError, match="not an image file: .*garbage.png"):
        load_image(garbage)
    data = (synthetic / "train" / "good" / "000.png").read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(AdedgeError, match="corrupt or truncated image: .*truncated.png"):
        load_image(truncated)
    text = tmp_path / "readme.txt"
    text.write_text("hello")
    with pytest.raises(AdedgeError, match="not an image file: .*readme.txt"):
        load_image(text)
    with pytest.raises(AdedgeError, match="image not found"):
        load_image(tmp_path / "missing.png")


def test_oversized_and_unreadable_images_are_refused_before_decoding(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    Image.new("1", (11000, 11000)).save(big)  # 121 megapixels, a few kB on disk
    with pytest.raises(AdedgeError, match="image too large: .*big.png is 11000x11000 pixels"):
        load_image(big)
    small = _png(tmp_path / "small.png", np.zeros((4, 4, 3), np.uint8))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(small))

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(AdedgeError, match="cannot read .*small.png: permission denied"):
        load_image(small)


def test_grayscale_rgba_and_16_bit_become_uint8_rgb(tmp_path):
    gray = np.arange(0, 240, dtype=np.uint8).reshape(12, 20)
    assert (load_image(_png(tmp_path / "g.png", gray)) == gray[..., None]).all()
    rgba = np.dstack([gray, gray // 2, gray // 3, np.full_like(gray, 7)])
    assert (load_image(_png(tmp_path / "a.png", rgba)) == rgba[..., :3]).all()
    deep = (gray.astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    decoded = load_image(tmp_path / "d.png")
    assert decoded.dtype == np.uint8 and decoded.shape == (12, 20, 3)
    assert (decoded[..., 1] == gray).all()


def test_mask_size_must_match_its_image(tmp_path):
    mask = _png(tmp_path / "m.png", np.full((10, 10), 255, np.uint8))
    assert load_mask(mask, (10, 10)).all()
    with pytest.raises(AdedgeError, match="mask .*m.png is 10x10 but its image is 12x10"):
        load_mask(mask, (10, 12))


def test_map_and_mask_resizing():
    assert resize_map(np.ones((8, 8), np.float32), (20, 30)).shape == (20, 30)
    mask = np.zeros((8, 8), bool)
    mask[:4] = True
    assert resize_mask(mask, (16, 16))[:8].all() and not resize_mask(mask, (16, 16))[8:].any()


def test_synthetic_dataset_is_deterministic_and_has_real_defects(tmp_path):
    first = generate_synthetic(tmp_path / "a", seed=7, train=2, test_good=1, per_defect=1, size=64)
    second = generate_synthetic(tmp_path / "b", seed=7, train=2, test_good=1, per_defect=1, size=64)
    other = generate_synthetic(tmp_path / "c", seed=8, train=2, test_good=1, per_defect=1, size=64)
    files = sorted(p.relative_to(first) for p in first.rglob("*.png"))
    assert files == sorted(p.relative_to(second) for p in second.rglob("*.png"))
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    assert any((first / f).read_bytes() != (other / f).read_bytes() for f in files)
    for defect in DEFECTS:
        assert load_mask(first / "ground_truth" / defect / "000_mask.png", (64, 64)).sum() > 5


def test_ground_truth_is_resized_to_the_model_size(synthetic):
    from adedge.data.datasets import ground_truth

    samples = open_dataset(synthetic).test
    bad = next(s for s in samples if s.anomalous)
    full = load_mask(bad.mask_path, (128, 128))
    small = ground_truth(bad, (32, 32))
    assert small.shape == (32, 32) and small.any() and (small == resize_mask(full, (32, 32))).all()
    assert not ground_truth(next(s for s in samples if not s.anomalous), (32, 32)).any()
