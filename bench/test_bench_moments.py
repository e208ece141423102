"""pytest-benchmark: Moments.update vs np.mean + np.var (run: pytest bench --benchmark-enable)."""
import numpy as np
import pytest

from fastvar import Moments

X = np.random.default_rng(0).standard_normal(10_000_000)


@pytest.mark.benchmark(group="moments-1e7")
def test_moments_update(benchmark):
    Moments().update(X[:10])  # warm-up: compile or load the cached kernel
    m = benchmark(lambda: Moments().update(X))
    assert m.count == X.size


@pytest.mark.benchmark(group="moments-1e7")
def test_numpy_mean_var(benchmark):
    benchmark(lambda: (np.mean(X), np.var(X)))
