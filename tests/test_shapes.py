"""Parts in their own shape: --image-size takes H,W; by default a tall part keeps its aspect at about
the model's pixel count, a square part keeps the square size; photos that differ by a few pixels
train and run."""

import json

import numpy as np
import pytest

from adedge.data.images import load_image, save_image
from adedge.errors import AdedgeError
from adedge.formats import aspect_size, parse_image_size


@pytest.mark.parametrize("text, size", [("256", (256, 256)), ("512,192", (512, 192)), ("512x192", (512, 192)), (" 64 X 96 ", (64, 96))])
def test_image_size_takes_one_side_or_both(text, size):
    assert parse_image_size(text) == size


@pytest.mark.parametrize("text", ["", "100", "256,", "256,100", "0", "-64", "4096", "２５６", "²", "256x256x256", "1e3"])
def test_image_size_refuses_what_is_not_a_size(text):
    with pytest.raises(AdedgeError, match="--image-size"):
        parse_image_size(text)


def test_the_default_size_keeps_the_parts_aspect_at_about_the_pixel_count():
    assert aspect_size(256, 1.0, 64) == (256, 256) and aspect_size(320, 1.0, 32) == (320, 320)  # square parts: as before
    assert aspect_size(256, 1.01, 32) == (256, 256)  # a few pixels off square: still square
    height, width = aspect_size(256, 1250 / 500, 32)  # a Kolektor photo
    assert (height, width) == (416, 160) and abs(height * width / 256**2 - 1) < 0.05
    assert aspect_size(256, 1 / 40, 32) == (32, 1632)  # a thin strip: at least one step high
    assert aspect_size(256, 1.0, 64) == aspect_size(256, 0.99, 64)


def _tall_parts(synthetic, folder):
    """Tall plates (two synthetic plates stacked) whose heights differ by a few pixels, as Kolektor's photos do."""
    for split in ("train/good", "test/good", "test/scratch"):
        sources = sorted((synthetic / split).glob("*.png"))
        (folder / split).mkdir(parents=True)
        for n, path in enumerate(sources[:-1]):
            tall = np.concatenate([load_image(path), load_image(sources[n + 1])])[: 256 - n % 3]
            save_image(folder / split / path.name, tall)
    return folder


@pytest.mark.trains
def test_tall_parts_train_in_their_aspect_and_run_at_any_frame_size(synthetic, tmp_path):
    from adedge.export.exporter import export_bundle
    from adedge.runtime import Model
    from adedge.train.trainer import TrainConfig, train

    data = _tall_parts(synthetic, tmp_path / "tall")
    info = train(TrainConfig(data, tmp_path / "run", settings={"pool": 2}))
    assert info.image_size == [352, 192]  # about 256 x 256 pixels at 2:1, multiples of 32 (DFM pools 2 cells of stride 16)
    export_bundle(tmp_path / "run", tmp_path / "bundle")
    assert json.loads((tmp_path / "bundle" / "adedge.json").read_text())["input"]["height"] == 352
    model = Model.load(tmp_path / "bundle")
    frame = load_image(sorted((data / "test" / "scratch").glob("*.png"))[0])
    result = model.predict(frame)
    assert result.model_map.shape == (352, 192) and result.anomaly_map.shape == frame.shape[:2]
    assert model.predict(frame[:-5]).score == pytest.approx(result.score, abs=0.05)  # a few pixels shorter: about the same score
