"""Hubness statistics (``mmrec.evaluate.hubness``) on vectors whose answer is known by construction."""

from __future__ import annotations

import numpy as np

from mmrec.evaluate.hubness import neighbours, sample_keys, vector_hubness


def test_a_centroid_is_a_hub_and_skews_k_occurrence() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16)).astype(np.float32) + 2.0  # anisotropic: a shared offset
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with_hub = np.vstack([x, x.mean(axis=0, keepdims=True) / np.linalg.norm(x.mean(axis=0))])
    found = vector_hubness(with_hub, k=10)
    assert found.top_items[0][0] == 200 and found.max_share > 0.5  # the centroid is in most top-10 lists
    assert found.skewness > 1.0
    # centring removes the offset: the same points are far less hubby
    centred = x - x.mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    assert vector_hubness(centred, k=10).skewness < found.skewness
    nb = neighbours(with_hub, 10)
    assert nb.shape == (201, 10) and not (nb == np.arange(201)[:, None]).any()  # never itself


def test_sample_is_bounded_and_seeded() -> None:
    keys = list(range(5000))
    a, b = sample_keys(keys, 100, seed=1), sample_keys(keys, 100, seed=1)
    assert a == b and len(a) == 100 and a == sorted(a)
    assert sample_keys(keys[:50], 100) == keys[:50]
