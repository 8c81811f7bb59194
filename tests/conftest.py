"""Shared fixtures: one small synthetic dataset, one trained DFM run and its bundles per test session."""

from pathlib import Path

import pytest

from adedge.data.synthetic import generate_synthetic
from adedge.train.models import MODEL_NAMES, model_plugin

SHARED_MVTEC = Path(__file__).resolve().parents[2] / "shared" / "data" / "mvtec"
IMAGE_SIZE = 128


def require_shared(category: str) -> Path:
    """The real MVTec category under ../shared, or skip (it is absent outside the team's machines)."""
    folder = SHARED_MVTEC / category
    if not folder.is_dir():
        pytest.skip(f"real MVTec data not available: {folder} is absent")
    return folder


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> Path:
    """A small synthetic MVTec category (plates at 128 px)."""
    return generate_synthetic(tmp_path_factory.mktemp("data"), seed=3, train=30, test_good=6, per_defect=4, size=IMAGE_SIZE)


TEST_TRAINING = {name: model_plugin(name).quick_settings for name in MODEL_NAMES}  # every registered model gets every per-model test
# fixtures that train a model: a test that uses one (directly or through another) is in the slow tier
TRAINING_FIXTURES = {"run_dir", "openvino_bundle", "onnx_bundle", "bottle_bundles", "pill_bundles", "small_model"}


def pytest_collection_modifyitems(items) -> None:
    """Mark every test that trains (through a fixture) or is marked `trains` as `slow`: `make test-fast`
    runs the rest in well under a minute."""
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("trains"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", params=sorted(TEST_TRAINING))
def model_name(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def run_dir(model_name, synthetic, tmp_path_factory) -> Path:
    """A trained run of each model on the synthetic plates at 128 px."""
    from adedge.train.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / model_name
    train(TrainConfig(synthetic, out, model=model_name, image_size=IMAGE_SIZE, settings=TEST_TRAINING[model_name]))
    return out


@pytest.fixture(scope="session")
def openvino_bundle(run_dir, tmp_path_factory) -> Path:
    from adedge.export.exporter import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "openvino"
    export_bundle(run_dir, out, "openvino")
    return out


@pytest.fixture(scope="session")
def onnx_bundle(run_dir, tmp_path_factory) -> Path:
    from adedge.export.exporter import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "onnx"
    export_bundle(run_dir, out, "onnx")
    return out


@pytest.fixture(scope="session")
def small_model(synthetic, tmp_path_factory) -> tuple[Path, Path]:
    """One quick DFM run at 64 px and its OpenVINO bundle, for tests about files and layouts rather
    than models (they edit copies only)."""
    from adedge.export.exporter import export_bundle
    from adedge.train.trainer import TrainConfig, train

    folder = tmp_path_factory.mktemp("small")
    train(TrainConfig(synthetic, folder / "run", image_size=64, settings={"pool": 2}))
    export_bundle(folder / "run", folder / "bundle")
    return folder / "run", folder / "bundle"


@pytest.fixture
def broker(tmp_path):
    """A real Mosquitto broker on a free port (skips where Debian's mosquitto is not installed)."""
    from line_peers import MOSQUITTO, Broker

    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (CI installs Debian's: apt-get install mosquitto)")
    broker = Broker(tmp_path)
    broker.start()
    yield broker
    if broker.process.poll() is None:
        broker.stop()
