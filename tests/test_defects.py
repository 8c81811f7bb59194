import numpy as np
import pytest

from adedge.data.defects import KINDS, defective_copies, with_defect


def _part(height=120, width=90):
    rng = np.random.default_rng(1)
    return np.clip(rng.normal(128, 10, (height, width, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", KINDS)
def test_each_defect_is_small_inside_the_centre_and_leaves_the_original_alone(kind):
    image = _part()
    original = image.copy()
    defective = with_defect(image, kind, np.random.default_rng(3))
    assert (image == original).all() and defective.dtype == np.uint8 and defective.shape == image.shape
    changed = (defective != image).any(axis=2)
    assert 0 < changed.mean() < 0.05  # small: a few percent of the frame at most
    rows, cols = np.nonzero(changed)
    height, width = changed.shape
    assert rows.min() >= height // 5 - 1 and cols.min() >= width // 5 - 12  # a scratch may run past the centre
    assert rows.max() <= height and cols.max() <= width


def test_copies_are_one_per_kind_and_seeded():
    images = [_part(), _part(64, 64)]
    first = defective_copies(images, np.random.default_rng(0))
    again = defective_copies(images, np.random.default_rng(0))
    assert len(first) == len(KINDS) * len(images)
    assert all((a == b).all() for a, b in zip(first, again))
    assert [c.shape for c in first] == [images[0].shape] * len(KINDS) + [images[1].shape] * len(KINDS)
