import numpy as np
import pytest
import torch

from adedge.train.cflow import (
    Z_CLIP,
    CflowHead,
    CflowSettings,
    FlowStage,
    _lr_factor,
    build_decoder,
    fit_cflow_head,
    log_likelihood,
    positional_encoding,
    top_mean,
    train_decoder,
)

SETTINGS = CflowSettings(meta_epochs=2, sub_epochs=1, warmup_meta_epochs=1, fiber_batch=64, lr=1e-3, blocks=8, clamp=1.9, condition=16)


def _features(channels=7, size=4, images=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(images, channels, size, size, generator=generator) * 2 + 1


def test_positional_encoding_separates_x_and_y():
    encoding = positional_encoding(16, 3, 5).reshape(3, 5, 16)
    assert encoding.abs().max() <= 1.0
    assert torch.equal(encoding[0, :, :8], encoding[2, :, :8])  # first half: x only
    assert torch.equal(encoding[:, 0, 8:], encoding[:, 4, 8:])  # second half: y only
    assert len({tuple(row.tolist()) for row in encoding.reshape(15, 16)}) == 15
    assert torch.allclose(encoding[0, 0], torch.tensor([0.0, 1.0] * 8))


@pytest.mark.parametrize("channels", [7, 12])
def test_export_flow_matches_the_trained_freia_decoder(channels):
    np.random.seed(1)
    torch.manual_seed(1)
    features = _features(channels)
    encoding = positional_encoding(16, 4, 4)
    decoder = build_decoder(channels, 16, 8, 1.9)
    fibers = features.permute(0, 2, 3, 1).reshape(-1, channels)
    train_decoder(fibers, encoding, decoder, SETTINGS, torch.Generator().manual_seed(0), lambda items, _: items, "test")
    stage = FlowStage("s", channels, 4, 4, 16, 8, 1.9)
    for block, trained in zip(stage.blocks, decoder.module_list):
        block.load_trained(trained, encoding)
    with torch.no_grad():
        z, log_jac_det = decoder(fibers, c=[encoding.repeat(3, 1)])
        reference = log_likelihood(z, log_jac_det).reshape(3, 1, 4, 4)
        exported = stage.log_likelihood(features)
    assert float(log_jac_det.abs().max()) > 0.1  # the flow really transforms its input
    torch.testing.assert_close(exported, reference, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def head():
    fitted, history = fit_cflow_head({"a": _features(6, 4), "b": _features(10, 2, seed=1)}, SETTINGS, 3, lambda items, _: items)
    return fitted, history


def test_training_lowers_the_loss(head):
    _, history = head
    assert set(history) == {"a", "b"} and all(len(losses) == 2 and losses[1] < losses[0] for losses in history.values())


def test_head_keeps_only_gathers_and_forward_weights(head):
    fitted, _ = head
    for name, tensor in fitted.state_dict().items():
        assert not (tensor.ndim == 2 and tensor.shape[0] == tensor.shape[1] and "permutation" not in name), name
        if name.endswith("permutation"):
            assert tensor.dtype == torch.int64 and sorted(tensor.tolist()) == list(range(len(tensor)))


def test_head_is_batch_independent_and_normalised(head):
    fitted, _ = head
    features = {"a": _features(6, 4, images=4, seed=9), "b": _features(10, 2, images=4, seed=10)}
    with torch.no_grad():
        maps, scores = fitted(features, (8, 8))
        alone = [fitted({k: v[i : i + 1] for k, v in features.items()}, (8, 8)) for i in range(4)]
    torch.testing.assert_close(torch.cat([m for m, _ in alone]), maps)
    torch.testing.assert_close(torch.cat([s for _, s in alone]), scores)
    assert maps.shape == (4, 1, 8, 8)
    top = maps.flatten(1).sort(dim=1, descending=True).values[:, : max(1, 64 // 100)]
    torch.testing.assert_close(scores, top.mean(1))  # the top 1% of 64 values: the maximum
    train = {"a": _features(6, 4), "b": _features(10, 2, seed=1)}
    with torch.no_grad():
        for flow in fitted.flows:  # each stage: z-scores of the training features, clipped for outliers
            z = flow(train[flow.name]).double()
            assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.05, flow.name
            far = flow(train[flow.name] * 50)
            assert float(far.max()) == Z_CLIP and float(far.min()) > float(z.min()), flow.name


def test_top_mean_scores_the_highest_share():
    anomaly_map = torch.arange(1000.0).reshape(2, 1, 20, 25)
    torch.testing.assert_close(top_mean(anomaly_map), torch.tensor([497.0, 997.0]))  # the top 5 of 500 each


def test_same_seed_same_flows(head):
    again, _ = fit_cflow_head({"a": _features(6, 4), "b": _features(10, 2, seed=1)}, SETTINGS, 3, lambda items, _: items)
    fitted, _ = head
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in fitted.state_dict().items())
    rebuilt = CflowHead(**fitted.config())
    rebuilt.load_state_dict(fitted.state_dict(), strict=True)


def test_learning_rate_warms_up_then_decays():
    factors = [_lr_factor(step, 10, 5, 1) for step in range(50)]
    assert factors[0] == pytest.approx(0.1) and max(factors) <= 1.0
    assert all(a <= b for a, b in zip(factors[:10], factors[1:10]))  # warm-up rises
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))  # cosine falls
    assert factors[-1] < 0.1
