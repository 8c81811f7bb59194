import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from adedge.errors import AdedgeError
from adedge.train.dfm import DFMSettings, fit_dfm_head


def _fit(features, pool, variance, score):
    head, _ = fit_dfm_head({"s": features}, DFMSettings(pool, variance, score), 0, lambda items, _: items)
    return head


@pytest.fixture(scope="module")
def features():
    generator = torch.Generator().manual_seed(0)
    basis = torch.randn(6, 8 * 4 * 4, generator=generator)
    codes = torch.randn(40, 6, generator=generator) * torch.tensor([5.0, 4, 3, 2, 1, 0.5])
    return (codes @ basis + 0.05 * torch.randn(40, 128, generator=generator) + 3.0).reshape(40, 8, 4, 4)


def test_component_count_follows_the_variance_share(features):
    x = features.flatten(1).double().numpy()
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False)))[::-1]
    cumulative = np.cumsum(eigenvalues) / eigenvalues.sum()
    for share in (0.5, 0.9, 0.97, 0.999):
        k = _fit(features, 1, share, "fre").components.shape[0]
        assert cumulative[k - 1] > share - 1e-9 and (k == 1 or cumulative[k - 2] <= share + 1e-9)


def test_fre_score_and_map_match_a_numpy_reference(features):
    head = _fit(features, 2, 0.9, "fre")
    probe = features[:3] + torch.randn(3, 8, 4, 4)
    pooled = torch.nn.functional.avg_pool2d(probe, 2).flatten(1).double().numpy()
    mean, components = head.mean.double().numpy(), head.components.double().numpy()
    centred = pooled - mean
    error = (centred - centred @ components.T @ components) ** 2
    anomaly_map, score = head({"s": probe}, (8, 8))
    np.testing.assert_allclose(score.numpy(), error.sum(1), rtol=1e-4)
    coarse = error.reshape(3, 8, 2, 2).sum(1)  # per-position error, summed over channels
    assert anomaly_map.shape == (3, 1, 8, 8)
    corners = anomaly_map[:, 0, [0, 0, 7, 7], [0, 7, 0, 7]].numpy()  # bilinear upsampling keeps the corners
    np.testing.assert_allclose(corners, coarse[:, [0, 0, 1, 1], [0, 1, 0, 1]], rtol=1e-4)


def test_nll_is_a_gaussian_on_projections_centred_once(features):
    head = _fit(features, 1, 0.97, "nll")
    x = features.flatten(1).double().numpy()
    projections = (x - head.mean.double().numpy()) @ head.components.double().numpy().T
    np.testing.assert_allclose(projections.mean(0), 0.0, atol=1e-4)  # centred by the PCA mean, and only by it
    gaussian = multivariate_normal(np.zeros(projections.shape[1]), np.cov(projections, rowvar=False))
    probe = features[:4] * 1.1
    _, nll = head({"s": probe}, (4, 4))
    probe_proj = (probe.flatten(1).double().numpy() - head.mean.double().numpy()) @ head.components.double().numpy().T
    np.testing.assert_allclose(nll.numpy(), -gaussian.logpdf(probe_proj), rtol=1e-3)


def test_bad_dfm_settings(features):
    with pytest.raises(AdedgeError, match="between 0 and 1"):
        DFMSettings(1, 1.5, "fre")
    with pytest.raises(AdedgeError, match="unknown DFM score"):
        DFMSettings(1, 0.9, "max")
    with pytest.raises(AdedgeError, match="must divide"):
        _fit(features, 3, 0.9, "fre")
    with pytest.raises(AdedgeError, match="at least 2"):
        _fit(features[:1], 1, 0.9, "fre")
