"""PatchCore's own promises: the graph's distance is the true nearest-neighbour distance, the bank is
capped whatever the number of images, and its selection runs in memory linear in the patches."""

import subprocess
import sys

import pytest
import torch

from adedge.errors import AdedgeError
from adedge.progress import no_progress
from adedge.train.patchcore import PatchcoreSettings, fit_patchcore_head, select_coreset


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact Euclidean distances (cdist's own matmul shortcut would round like the graph's)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def _features(images: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"s8": torch.rand(images, 6, 8, 8, generator=generator), "s16": torch.rand(images, 10, 4, 4, generator=generator)}


@pytest.mark.parametrize("dim", [0, 4])
def test_the_map_is_the_distance_to_the_nearest_bank_vector(dim):
    head, _ = fit_patchcore_head(_features(12), PatchcoreSettings(bank=100, dim=dim), 0, no_progress)
    features = _features(3, seed=1)
    anomaly_map, score = head(features, (8, 8))  # the patch grid's own size: the map is the distances themselves
    expected = _distances(head.patches(features), head.bank).amin(-1)
    torch.testing.assert_close(anomaly_map.flatten(1), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(score, expected.amax(1), atol=1e-4, rtol=1e-4)
    assert anomaly_map.shape == (3, 1, 8, 8)
    bank_patch = head.bank[:1]  # a patch equal to a bank vector is at distance 0
    assert _distances(bank_patch[None], head.bank).amin() == 0


def test_the_bank_is_capped_and_made_of_training_patches():
    features = _features(40)
    head, _ = fit_patchcore_head(features, PatchcoreSettings(bank=50), 0, no_progress)
    patches = head.patches(features).reshape(-1, head.bank.shape[1])
    assert head.bank.shape == (50, 16)
    assert _distances(head.bank, patches).amin(1).max() < 1e-5  # each bank vector is one of the patches
    assert len(torch.unique(head.bank, dim=0)) == 50
    small, _ = fit_patchcore_head(_features(2), PatchcoreSettings(bank=1000), 0, no_progress)
    assert small.bank.shape[0] == 2 * 64  # fewer patches than the cap: all of them


def test_the_coreset_covers_what_a_random_sample_misses():
    """k-centre keeps the rare patches: a tight cluster of 10 outliers among 5,000 ordinary ones is in
    the bank, where a random sample of the same size would most likely miss it."""
    generator = torch.Generator().manual_seed(0)
    patches = torch.randn(10, 500, 8, generator=generator)
    patches[3, :10] += 40.0
    bank = select_coreset(patches, 64, 0)
    nearest = _distances(patches[3, :10], bank).amin(1)
    assert nearest.min() == 0 and nearest.max() < 10.0  # some of them in the bank, all near it (the others are 110 away)


def test_settings_that_make_no_sense_are_refused():
    for setting, message in (({"bank": 0}, "bank"), ({"dim": -1}, "dim"), ({"neighbourhood": 2}, "neighbourhood")):
        with pytest.raises(AdedgeError, match=message):
            PatchcoreSettings(**setting)


def test_selection_on_1000_images_runs_in_memory_linear_in_the_patches():
    """1,000 images x 1,024 patches (a 256 px stride-8 grid) of 16 values: 66 MB of patches. An N x N
    distance matrix would be 4 TB; the selection must stay within a small multiple of its input."""
    code = (
        "import resource, torch\n"
        "from adedge.train.patchcore import select_coreset\n"
                "patches = torch.rand(1000, 1024, 16)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "bank = select_coreset(patches, 4096, 0)\n"
        "assert bank.shape == (4096, 16), bank.shape\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)\n"
    )
    grown = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert grown < 4 * 1000 * 1024 * 16 * 4, f"selection grew the process by {grown / 1e6:.0f} MB"
