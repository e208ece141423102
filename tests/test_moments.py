import math

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fastvar import Moments
from fastvar.kernels.accumulators import merge_moments, update_moments


def test_matches_scipy_on_skewed_data():
    x = np.random.default_rng(0).exponential(size=100_000)
    m = Moments().update(x)
    assert m.count == x.size
    assert m.mean() == pytest.approx(x.mean(), rel=1e-12)
    assert m.var() == pytest.approx(x.var(), rel=1e-10)
    assert m.var(ddof=1) == pytest.approx(x.var(ddof=1), rel=1e-10)
    assert m.skew() == pytest.approx(stats.skew(x), rel=1e-9)
    assert m.kurtosis() == pytest.approx(stats.kurtosis(x), rel=1e-9)
    assert m.sem() == pytest.approx(stats.sem(x), rel=1e-9)


def test_large_offset_keeps_variance_accurate():
    x = 1e9 + np.random.default_rng(1).standard_normal(1_000_000)
    m = Moments().update(x)
    assert abs(m.var() / np.var(x) - 1) < 1e-6


def test_gaussian_excess_kurtosis_is_zero():
    x = np.random.default_rng(2).standard_normal(400_000)
    m = Moments().update(x)
    se_kurt = math.sqrt(24 / x.size)
    assert abs(m.kurtosis()) < 5 * se_kurt
    assert abs(m.skew()) < 5 * math.sqrt(6 / x.size)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=300), st.data())
def test_any_split_merged_equals_one_pass(values, data):
    x = np.array(values)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(x)), max_size=4)))
    parts = np.split(x, cuts)
    merged = Moments()
    for part in parts:
        merged = merged + Moments().update(part)
    whole = Moments().update(x)
    assert merged.count == whole.count
    scale = max(np.abs(x).max(), 1e-300)
    assert abs(merged.mean() - whole.mean()) <= 1e-12 * scale
    assert abs(merged.var() - whole.var()) <= 1e-12 * max(whole.var(), scale * scale * 1e-6)


def test_merge_leaves_inputs_untouched_and_handles_empty():
    a = Moments().update([1.0, 2.0])
    before = a.state.copy()
    c = a + Moments()
    assert np.array_equal(a.state, before) and np.array_equal(c.state, before)
    assert math.isnan(Moments().mean()) and math.isnan(Moments().var())


def test_nonfinite_input_raises_and_names_the_count():
    m = Moments().update([1.0, 2.0])
    with pytest.raises(ValueError, match="2 of 4 values"):
        m.update([1.0, np.nan, np.inf, 3.0])
    assert m.count == 2  # unchanged


def test_rejects_non_numeric_and_non_moments():
    with pytest.raises(TypeError):
        Moments().update(["a", "b"])
    with pytest.raises(TypeError):
        Moments().merge(3)


def test_dict_round_trip_and_integer_input():
    m = Moments().update(np.arange(10))
    again = Moments.from_dict(m.to_dict())
    assert np.array_equal(again.state, m.state)
    with pytest.raises(ValueError, match="lacks"):
        Moments.from_dict({"count": 1})


def test_update_and_merge_callable_from_user_njit_code():
    @numba.njit
    def user_loop(state, chunks):
        other = np.zeros(5)
        for i in range(chunks.shape[0]):
            update_moments(other, chunks[i])
        merge_moments(state, other)

    chunks = np.random.default_rng(3).standard_normal((7, 50))
    m = Moments().update([5.0])
    user_loop(m.state, chunks)
    ref = Moments().update(np.concatenate([[5.0], chunks.ravel()]))
    assert m.count == ref.count
    assert m.var() == pytest.approx(ref.var(), rel=1e-12)
    assert m.kurtosis() == pytest.approx(ref.kurtosis(), rel=1e-10)


def test_statistics_are_methods_like_numpy_and_count_a_property():
    m = Moments().update(np.arange(10.0))
    assert m.count == 10
    assert m.mean() == 4.5 and m.var() == pytest.approx(8.25)
    assert callable(m.skew) and callable(m.kurtosis) and callable(m.std) and callable(m.sem)


def _exact_variance(values):
    from fractions import Fraction

    exact = [Fraction(v) for v in values]
    mean = sum(exact) / len(exact)
    return float(sum((v - mean) ** 2 for v in exact) / len(exact)), float(mean)


@pytest.mark.parametrize("offset", [0.0, 1e14, 1e15, 1e16, -3e15])
def test_variance_under_a_large_offset_is_exact_to_1e_12(offset):
    # Moments().update(x + 1e15) gave a variance of 4.378 where the data's is 2.01; merging
    # chunks was worse
    data = np.random.default_rng(1).gamma(2.0, size=10001) + offset
    var, mean = _exact_variance(data)
    chunks = np.array_split(data, 7)
    streamed, merged = Moments(), Moments()
    for chunk in chunks:
        streamed.update(chunk)
        merged = merged + Moments().update(chunk)
    rebuilt = Moments()
    for chunk in chunks:  # through to_dict/from_dict between updates
        rebuilt = Moments.from_dict(rebuilt.update(chunk).to_dict())
    for m in (Moments().update(data), streamed, merged, rebuilt):
        assert m.var() == pytest.approx(var, rel=1e-12, abs=0)
        assert m.mean() == pytest.approx(mean, rel=1e-15, abs=0)


def _four_lanes(values, start, stop, mean):
    # the block reductions' order, in plain Python floats: value i into lane i % 4 (the tail
    # into lane 0), lanes added as (0 + 1) + (2 + 3)
    sums = [[0.0] * 4 for _ in range(5)]  # x, x^2, d^2, d^3, d^4
    quads = (stop - start) // 4
    for i in range(start, stop):
        lane = (i - start) % 4 if i < start + 4 * quads else 0
        x = float(values[i])
        d = x - mean
        d2 = d * d
        for row, term in zip(sums, (x, x * x, d2, d2 * d, d2 * d2)):
            row[lane] += term
    return [(row[0] + row[1]) + (row[2] + row[3]) for row in sums]


def test_vector_block_reductions_are_bitwise_the_scalar_lanes():
    # the 4-wide vector sums (kernels.accumulators._lanes) round exactly as four scalar
    # accumulators would, on contiguous and strided arrays, any start, stop and tail
    from fastvar.kernels.accumulators import _block_central, _block_sums

    rng = np.random.default_rng(3)
    for trial in range(60):
        n = int(rng.integers(0, 300))
        v = rng.standard_normal(n) * 10.0 ** rng.integers(-6, 6) + rng.standard_normal()
        for arr in (v, v[::3]):
            start = int(rng.integers(0, arr.size + 1))
            stop = int(rng.integers(start, arr.size + 1))
            mean = float(rng.standard_normal())
            s, q, m2, m3, m4 = _four_lanes(arr, start, stop, mean)
            assert _block_sums(arr, start, stop) == (s, q)
            assert _block_central(arr, start, stop, mean) == (m2, m3, m4)


def _fma(a, b, c):
    # a b + c rounded once (int / int true division rounds correctly)
    from fractions import Fraction

    q = Fraction(a) * Fraction(b) + Fraction(c)
    return q.numerator / q.denominator


def test_shifted_power_sums_are_bitwise_their_scalar_lanes():
    # the exact engine's one pass (kernels.accumulators._shifted_lanes): value i into lane
    # i % 8, d^3 and d^4 by fused multiply-adds, lanes added ((0 + 4) + (1 + 5)) + ((2 + 6)
    # + (3 + 7)), then the tail; on any length
    from fastvar.kernels.accumulators import _update_shifted

    rng = np.random.default_rng(5)
    for n in (1, 7, 8, 9, 23, 64, 101):
        x = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 3) + 0.1
        shift = float(x.mean())
        lanes = [[0.0] * 8 for _ in range(4)]
        octs = n // 8
        for i in range(8 * octs):
            d = float(x[i]) - shift
            d2 = d * d
            acc = [row[i % 8] for row in lanes]
            new = (acc[0] + d, acc[1] + d2, _fma(d2, d, acc[2]), _fma(d2, d2, acc[3]))
            for row, v in zip(lanes, new):
                row[i % 8] = v
        sums = [((r[0] + r[4]) + (r[1] + r[5])) + ((r[2] + r[6]) + (r[3] + r[7]))
                for r in lanes]
        for i in range(8 * octs, n):
            d = float(x[i]) - shift
            d2 = d * d
            sums = [sums[0] + d, sums[1] + d2, _fma(d2, d, sums[2]), _fma(d2, d2, sums[3])]
        state = np.zeros(6)
        state[0], state[1] = shift, 1.0  # sums already begun: the shift is kept
        _update_shifted(np.zeros(16), state, x)  # the mean: the sums are kept
        assert list(state[2:]) == sums


@pytest.mark.parametrize("loc, scale", [(0.0, 1.0), (0.4, 0.6), (-1e3, 1.0), (5.0, 1e-5),
                                        (1e8, 1.0)])
def test_exact_engines_power_sums_agree_with_two_passes(loc, scale):
    # the exact engine's one-pass reduction (add_networks(..., sums): power sums about a
    # shift, flushed by flush_sums) against the two passes and exact sums, over trials
    # of up to 2600 values, a jump of the mean (the fallback to two passes), a NaN and an
    # infinity; mean / sd up to 1e8
    from fastvar.kernels.accumulators import (MOMENTS, NONFINITE, PAIR, WELFORD, add_networks,
                                              flush_sums)

    rng = np.random.default_rng(7)
    one, two, sums = np.zeros(16), np.zeros(16), np.zeros(6)
    lengths_one, lengths_two = np.empty(3), np.empty(3)
    pooled = []
    for trial in range(12):
        n = int(rng.integers(1, 2600))
        x = loc + scale * rng.standard_normal((3, 2, n))
        if trial == 5:
            x += 50.0 * scale  # far from the shift: two passes
        if trial == 7:
            x[1, 0, n // 2] = np.nan
            x[2, 1, 0] = np.inf
        add_networks(one, x, lengths_one, sums)
        add_networks(two, x, lengths_two)
        np.testing.assert_allclose(lengths_one, lengths_two, rtol=1e-13, equal_nan=True)
        pooled.append(x[np.isfinite(x)])
    flush_sums(one, sums)
    assert sums[1] == 0.0
    assert one[MOMENTS] == two[MOMENTS] and one[NONFINITE] == two[NONFINITE] == 2
    data = np.concatenate(pooled)
    var, mean = _exact_variance(data)

    def shape(row):  # var, mean, skew, excess kurtosis
        n, mu, m2, m3, m4 = row[MOMENTS:MOMENTS + 5]
        return m2 / n, mu, math.sqrt(n) * m3 / m2 ** 1.5, n * m4 / (m2 * m2) - 3.0

    (v1, mu1, s1, k1), (v2, mu2, s2, k2) = shape(one), shape(two)
    # against the exact values: no worse than the two passes, to a few roundings
    assert abs(v1 - var) <= 4.0 * abs(v2 - var) + 1e-14 * var
    assert abs(mu1 - mean) <= 4.0 * abs(mu2 - mean) + 1e-15 * (abs(mean) + math.sqrt(var))
    assert k1 == pytest.approx(k2, rel=1e-8, abs=1e-10)
    assert s1 == pytest.approx(s2, rel=1e-6, abs=1e-8)
    # the trials' lengths ||x||^2 / n: their spread is ill-conditioned in any method when
    # mean / sd is large (relative 1e-16 of each length, against a spread of 1 / (mean / sd))
    np.testing.assert_allclose(one[WELFORD:WELFORD + 3], two[WELFORD:WELFORD + 3], rtol=1e-9)
    np.testing.assert_allclose(one[PAIR:PAIR + 6], two[PAIR:PAIR + 6], rtol=1e-9,
                               atol=1e-12 * (loc * loc + scale * scale))
