"""``fastvar explain``: why tiny weights keep signals and gradients at a steady size.

A measured walk-through of two classic questions (docs/classic.md): He and Xavier make each
weight tiny, and each product w_ij x_j tinier, yet z_i = sum_j w_ij x_j keeps a variance
of order 1 at every width, and gradients need not vanish. The histograms of the products
and of their sums (:class:`fastvar.Histogram`, every value counted, on bins in units of
each one's standard deviation) show the shapes: heavy tails for w x (excess kurtosis 6),
a Gaussian of variance 2 for z under He/ReLU.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from . import _text
from ._checks import check_int
from .api import MAX_TRIALS, simulate
from .engines.base import INPUTS_NORMAL, Plan
from .engines.numpy_engine import count_histogram, draw_weights
from .moments import Moments
from .network import Network, mlp
from .results.columns import IncompleteStatisticsWarning
from .results.histogram import BINS, RANGE, Histogram, bin_scales, edges_of

DEFAULT_WIDTHS = (6, 10, 100, 1000)
SAMPLE = 100_000  # values of each kind kept for histograms
MAX_PRODUCTS = 1 << 24  # weights in the layer terms() looks at
_CHUNK = 1 << 21  # products per chunk of networks: bounds memory, fixes the random streams
# (label, activation, init) of the depth study
DEPTH_CASES = (("relu, xavier", "relu", "xavier"), ("relu, he", "relu", "he"),
               ("tanh, xavier", "tanh", "xavier"), ("tanh, he", "tanh", "he"))


@dataclass(frozen=True)
class Terms:
    """Moments of the pieces of one layer's pre-activations z_i = sum_j w_ij a_j.

    ``weights`` pools the w_ij, ``inputs`` the a_j = a^{l-1}_j (the input x for layer 1),
    ``products`` the w_ij a_j, ``sums`` the sum_j w_ij a_j (bias left out), over all units
    and networks. ``samples`` holds up to SAMPLE values of each (same keys), for histograms;
    ``histograms`` the :class:`~fastvar.Histogram` of every product and every sum, on bins
    in units of their infinite-width standard deviation (Var w E[a^2] and n_{l-1} times it).

    Attributes
    ----------
    weights : Moments
        Of the w_ij.
    inputs : Moments
        Of the a_j.
    products : Moments
        Of the w_ij a_j.
    sums : Moments
        Of the z_i - b_i = sum_j w_ij a_j.
    samples : dict of str to numpy.ndarray
        Up to SAMPLE values of each, by the keys above (1-D arrays).
    histograms : dict of str to Histogram
        ``"products"`` and ``"sums"``, every value counted, in units of their infinite-width
        standard deviation.
    """

    weights: Moments
    inputs: Moments
    products: Moments
    sums: Moments
    samples: dict = field(repr=False)
    histograms: dict = field(repr=False, default_factory=dict)


def terms(net: Network, layer: int = 1, trials: int = 100, seed: int = 0) -> Terms:
    """Measure the products w_ij a_j of layer ``layer`` and their sums over ``trials`` networks.

    Each trial draws a network (weights of every layer up to ``layer``, by ``net``'s init,
    distribution and bias) and an input x ~ N(0, I), and propagates x to ``layer``.
    Memory stays near 2**21 products whatever the width; costs n_l * n_{l-1} per trial.

    Parameters
    ----------
    net : Network
        The network (only its layers up to ``layer`` are drawn).
    layer : int
        1 to L.
    trials : int
        Networks drawn, one input each.
    seed : int
        Seed of the random streams, 0 <= seed < 2**64.

    Returns
    -------
    Terms
        Moments, samples and histograms of weights, inputs, products and sums.

    Raises
    ------
    TypeError, ValueError
        ``net`` is no Network, an argument out of range, or n_l * n_{l-1} above 2**24 (every
        weight is drawn).

    Examples
    --------
    >>> import fastvar
    >>> t = fastvar.terms(fastvar.mlp(64, 1, activation="relu", init="he"), trials=50)
    >>> round(t.weights.var() * 64, 1)  # Var w = 2 / n under He
    2.0
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a fastvar.Network (see fastvar.mlp), "
                        f"got {type(net).__name__}")
    layer = check_int("layer", layer, 1, net.depth)
    trials = check_int("trials", trials, 1, MAX_TRIALS)
    seed = check_int("seed", seed, 0, 2 ** 64 - 1)
    plan = Plan(net, trials, seed, INPUTS_NORMAL, np.zeros((0, net.widths[0])), 1, False)
    n, m = net.widths[layer], net.widths[layer - 1]
    if n * m > MAX_PRODUCTS:
        raise ValueError(f"layer {layer} has {n * m} weights; terms() draws every one of them, so "
                         f"keep n_l * n_(l-1) <= {MAX_PRODUCTS} (width 4096 at most)")
    per_chunk = max(1, _CHUNK // (n * m))
    moments = {k: Moments() for k in ("weights", "inputs", "products", "sums")}
    samples = {}
    # E[a^2] of the layer's input by the theory (x ~ N(0, I) at layer 1), fixing the bins
    second = 1.0 if layer == 1 else bin_scales(net, 1.0, None, False)[layer - 2, 1] ** 2
    scales = {"products": math.sqrt(net.weight_var[layer - 1] * second)}
    scales["sums"] = math.sqrt(m) * scales["products"]
    counts = {key: np.zeros(BINS + 2, dtype=np.int64) for key in scales}
    for chunk, start in enumerate(range(0, trials, per_chunk)):
        count = min(per_chunk, trials - start)
        rng = np.random.default_rng([seed, chunk])
        a = rng.standard_normal((count, 1, net.widths[0]))
        for k in range(1, layer):
            z = a @ draw_weights(rng, plan, k, count).transpose(0, 2, 1)
            if net.bias_std > 0.0:
                z += net.bias_std * rng.standard_normal((count, 1, net.widths[k]))
            a = net.activation_fn(z)
        w = draw_weights(rng, plan, layer, count)
        products = w * a  # (count, n, m): w_ij a_j
        values = {"weights": w, "inputs": a, "products": products, "sums": products.sum(axis=2)}
        for key, v in values.items():
            moments[key].update(v)
            if chunk == 0:
                samples[key] = v.reshape(-1)[:SAMPLE].copy()
        for key, scale in scales.items():
            counts[key] += count_histogram(values[key], BINS / (2 * RANGE) / scale)
    histograms = {key: Histogram(edges_of(scale), counts[key][1:-1], counts[key][0],
                                 counts[key][-1], quantity=key, layer=layer, scale=scale,
                                 scale_from="theory") for key, scale in scales.items()}
    return Terms(**moments, samples=samples, histograms=histograms)


def tail_share(h: Histogram, sds: float) -> float:
    """The share of a histogram's values beyond ``sds`` of its scale on either side.

    Parameters
    ----------
    h : Histogram
        On the bins of :func:`~fastvar.results.histogram.edges_of`.
    sds : float
        How many scales out, rounded to a bin edge (tenths), 0.1 to 9.5.

    Returns
    -------
    float
        A share in [0, 1] (values below and above the bins included).

    Raises
    ------
    ValueError
        ``sds`` out of range.
    """
    steps = int(round(sds * BINS / (2 * RANGE)))
    mid = BINS // 2
    if not 0 < steps <= mid:
        raise ValueError(f"sds must be between 0.1 and {RANGE}, got {sds!r}")
    outside = int(h.counts[:mid - steps].sum() + h.counts[mid + steps:].sum())
    return (h.below + h.above + outside) / h.total


def _default_trials(n: int) -> int:
    """Networks per width: about 2e7 products, but at least 20 networks and 2e5 sums' worth."""
    return max(20, min(-(-20_000_000 // (n * n)), -(-200_000 // n)))


def walkthrough(widths: Sequence[int] = DEFAULT_WIDTHS, depth: int = 30, depth_width: int = 100,
                trials: int = 200, seed: int = 0) -> tuple[str, dict]:
    """The text of ``fastvar explain`` and the :class:`Terms` it measured, by width.

    ``widths``: the widths of the one-layer part (He init, x ~ N(0, I)); ``depth``,
    ``depth_width``, ``trials``: the networks of the depth part, run by
    :func:`fastvar.simulate` (engine "auto") beside the mean-field theory.

    Parameters
    ----------
    widths : sequence of int
        Widths of the one-layer part, 1 to 4096 each.
    depth : int
        Layers of the depth part, 2 to 10 000.
    depth_width : int
        Width of the depth part.
    trials : int
        Trials of the depth part.
    seed : int
        Seed of every run.

    Returns
    -------
    text : str
        The walk-through, lines of at most 100 characters.
    found : dict of int to Terms
        The one-layer measurements, by width.
    """
    widths = [check_int("width", w, 1, 4096) for w in widths]
    if not widths:
        raise ValueError("give at least one width")
    depth = check_int("depth", depth, 2, 10_000)
    found = {n: terms(mlp(n, 1, activation="relu", init="he"), 1, _default_trials(n), seed)
             for n in widths}
    head = ["width n", "std(w)", "sqrt(2/n)", "Var(w x)", "2/n", "kurt(w x)", "Var(z)",
            "kurt(z)", "6/n"]
    rows = [[str(n), f"{t.weights.std():.3g}", f"{math.sqrt(2 / n):.3g}", f"{t.products.var():.3g}",
             f"{2 / n:.3g}", f"{t.products.kurtosis():.2f}", f"{t.sums.var():.3f}",
             f"{t.sums.kurtosis():.2f}", f"{6 / n:.2f}"] for n, t in found.items()]
    biggest = max(widths)
    t = found[biggest]
    text = [
        "Why don't tiny weights make the signal vanish?",
        "",
        "One layer z_i = sum_j w_ij x_j with He weights (Var w = 2/n) and inputs x_j ~ N(0, 1),",
        "measured over random networks (kurt = excess kurtosis, 0 for a Gaussian):",
        "",
        _table(head, rows),
        "",
        f"At n = {biggest} each weight is tiny (std {t.weights.std():.3g}) and so is each "
        f"product w x (std {t.products.std():.3g}),",
        f"but z adds {biggest} of them. Variances of independent terms add, so",
        "  Var(z) = n * Var(w x) = n * Var(w) * E[x^2] = n * (2/n) * 1 = 2   at every width.",
        f"The signs are random, so they do not add up to n * {t.products.std():.3g} = "
        f"{biggest * t.products.std():.3g} either:",
        "the spread of a sum of n random terms grows like sqrt(n), and the 1/sqrt(n) in the",
        "weights cancels it. 'Not much bigger or smaller than 1' is said of z, not of w.",
        "Each product is heavy-tailed (a product of two Gaussians: excess kurtosis 6); their sum",
        "is close to Gaussian (kurtosis 6/n), as the central limit theorem says.",
        "",
        f"Their histograms at n = {biggest} (every value counted, fastvar.Histogram; "
        "simulate(histograms=True)",
        "gives them per layer): the share of values beyond k standard deviations,",
        "",
        _table(["k", "w x", "product of 2 Gaussians", "z", "Gaussian"],
               [[f"{k:g}", _percent(tail_share(t.histograms["products"], k)),
                 _percent(_product_tail(k)), _percent(tail_share(t.histograms["sums"], k)),
                 _percent(math.erfc(k / math.sqrt(2.0)))] for k in (2, 3, 5)]),
        "",
        "w x strays beyond 5 sd thousands of times as often as a Gaussian; z, its sum over "
        f"{biggest} terms,",
        "is the Gaussian N(0, 2) the theory says (fastvar explain --plot draws them).",
        "",
    ]
    runs = []
    for label, activation, init in DEPTH_CASES:
        net = mlp(depth_width, depth, activation=activation, init=init)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", IncompleteStatisticsWarning)
            runs.append((label, simulate(net, trials, seed=seed, engine="auto")))
        for said in caught:  # four networks: each warning says which it is about
            if issubclass(said.category, IncompleteStatisticsWarning):
                warnings.warn(f"network '{label}': {said.message}", said.category,
                              stacklevel=2)
            else:
                warnings.warn_explicit(said.message, said.category, said.filename, said.lineno)
    picks = sorted({0, min(9, depth - 1), depth - 1})
    head = ["network"] + [f"q^{p + 1}" for p in picks] + ["g^1"]
    rows = [[label] + [_versus(res.q_mean[p], res.q_mean_se[p], res.q_theory[p]) for p in picks]
            + [_versus(res.g_mean[0], res.g_mean_se[0], res.g_theory[0])] for label, res in runs]
    engine = runs[0][1].engine
    text += [
        f"Through depth: {depth} layers of width {depth_width}, {trials} random networks each "
        f"(engine {engine});",
        "q^l = ||z^l||^2/n is the signal, g^l = ||dL/dz^l||^2/n the gradient (g = 1 fed in",
        f"at layer {depth}). Measured ± standard error, infinite-width theory in brackets:",
        "",
        _table(head, rows),
        "",
        "Every layer repeats the one-layer sum with a^{l-1} = phi(z^{l-1}) in place of x, so",
        "  q^l = n Var(w) E[phi(z^{l-1})^2].",
        "ReLU zeroes half of its inputs, E[relu(z)^2] = q/2: Xavier (here Var w = 1/n) halves q",
        "at every layer, He (2/n) doubles Var(w) to make up for it and keeps q = 2 for ever.",
        "tanh is linear near 0 and squashes large values: with Xavier q decays slowly towards 0,",
        "with He it settles at a fixed point q* > 0 (fastvar.theory.fixed_point).",
        "Where the measurement misses the theory by more than a few SE, that is the finite width:",
        "the theory is the limit n -> infinity; the gap shrinks like 1/n (try --depth-width 1000).",
        "",
        "Why don't gradients vanish? The backward pass is the same kind of sum, over the n units",
        "of the next layer: dL/da_j = sum_i w_ij dL/dz_i, so",
        "  g^{l-1} = n Var(w) E[phi'(z^{l-1})^2] g^l,",
        f"ReLU with He: n * (2/n) * 1/2 = 1, so g^1 = g^{depth}. With Xavier the factor is 1/2 per",
        f"layer and the gradient reaching layer 1 is 2^-{depth - 1} of the one fed in. tanh with",
        "He has chi_1 = 2 E[tanh'(z)^2] > 1 (chaotic): its gradients grow on the way back.",
    ]
    return "\n".join(text), found


def _product_tail(sds: float) -> float:
    """P(|g h| > sds) for independent standard normals g, h (a product of unit variance):
    E over g of P(|h| > sds / |g|), by the midpoint rule on |g| in [0, 12] (4000 points)."""
    step = 12.0 / 4000
    g = (np.arange(4000) + 0.5) * step
    inner = np.array([math.erfc(sds / (x * math.sqrt(2.0))) for x in g])
    return float(np.sum(inner * np.exp(-0.5 * g * g)) * math.sqrt(2.0 / math.pi) * step)


def _percent(share: float) -> str:
    return f"{100 * share:.3g}%"


def _versus(measured: float, se: float, theory: float) -> str:
    return f"{measured:.3g} {_text.PLUS_MINUS} {se:.2g} [{theory:.3g}]"


def _table(head: list, rows: list) -> str:
    # columns beyond the terminal's width go into a second table under the first, which
    # repeats the first column (the row names)
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(head)]
    parts: list[list[int]] = [[0]]
    for j in range(1, len(head)):
        used = 2 + sum(widths[k] + 2 for k in parts[-1])
        if used + widths[j] > _text.WIDTH and len(parts[-1]) > 1:
            parts.append([0])
        parts[-1].append(j)
    blocks = []
    for part in parts:
        lines = ["  ".join(head[j].rjust(widths[j]) for j in part)]
        lines += ["  ".join(r[j].rjust(widths[j]) for j in part) for r in rows]
        blocks.append("\n".join("  " + line for line in lines))
    return "\n\n".join(blocks)


def save_histograms(found: dict, path: "str | os.PathLike") -> None:
    """Histograms of w, w x and z for each width of ``found`` (width -> Terms), to ``path``.

    ``path`` is checked before anything is drawn; the file is written atomically.

    Parameters
    ----------
    found : dict of int to Terms
        Width -> its :class:`Terms` (as :func:`walkthrough` returns).
    path : str or os.PathLike
        The image file.
    """
    from .plotting import check_image_output, write_figure

    check_image_output(path)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4.0), layout="constrained")
    axes = fig.subplots(1, 3)
    for i, (n, t) in enumerate(found.items()):
        axes[0].hist(t.samples["weights"], bins=120, density=True, histtype="step",
                     color=f"C{i}", label=f"n = {n}")
    axes[0].set_title("weight $w_{ij}$ (std $\\sqrt{2/n}$)", fontsize="medium")
    axes[0].set_xlabel("value")
    # the products and the sums, every one counted (fastvar.Histogram), in units of their
    # standard deviation: one axis for every width
    panels = [("products", "product $w_{ij} x_j$ / its std: heavy tails"),
              ("sums", "sum $z_i = \\sum_j w_{ij} x_j$ / $\\sqrt{2}$: Gaussian")]
    grid = np.linspace(-RANGE, RANGE, 400)
    for axis, (key, title) in zip(axes[1:], panels):
        for i, (n, t) in enumerate(found.items()):
            h = t.histograms[key]
            axis.stairs(h.density() * h.scale, h.edges / h.scale, color=f"C{i}",
                        label=f"n = {n}")
        axis.plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), "k--", lw=1,
                  label="N(0, 1)")
        axis.set_xlim(-8, 8)
        axis.set_ylim(1e-6, 2)
        axis.set_title(title, fontsize="medium")
        axis.set_xlabel("value / standard deviation")
    for axis in axes:
        axis.set_yscale("log")
        axis.set_ylabel("density")
        axis.legend(fontsize="small")
    write_figure(fig, path, dpi=100)


def first_look(width: int = 256, depth: int = 20, trials: int = 2000, seed: int = 0) -> str:
    """The text of a bare ``fastvar``: one ReLU network under Xavier and under He, side by side.

    Answers the question people come with: He makes every weight tiny (Var w = 2/n), yet the
    variance q^l = ||z^l||^2 / n of the signal stays at 2 through every layer, while
    Xavier's 1/n (for equal widths) halves it at each layer; the gradients mirror it.

    Parameters
    ----------
    width : int
        Units per layer.
    depth : int
        Number of layers.
    trials : int
        Trials per network.
    seed : int
        Seed of both runs.

    Returns
    -------
    str
        The two tables and what they show, lines of at most 100 characters.
    """
    runs = {init: simulate(mlp(width, depth, activation="relu", init=init), trials, seed=seed)
            for init in ("xavier", "he")}
    shown = sorted({1, 2, 5, depth // 2, depth - 1, depth} & set(range(1, depth + 1)))
    head = ["layer", "q Xavier", "theory", "q He", "theory", "g Xavier", "g He"]
    rows = []
    for layer in shown:
        i = layer - 1
        cells = [str(layer)]
        for init in ("xavier", "he"):
            res = runs[init]
            cells += [f"{res.q_mean[i]:.4g}{_text.PLUS_MINUS}{res.q_mean_se[i]:.2g}",
                      f"{res.q_theory[i]:.4g}"]
        cells += [f"{runs[init].g_mean[i]:.4g}{_text.PLUS_MINUS}{runs[init].g_mean_se[i]:.2g}"
                  for init in ("xavier", "he")]
        rows.append(cells)
    he = runs["he"]
    return "\n".join([
        "Why don't tiny weights make the signal vanish? Measured on a ReLU network of "
        f"{depth} layers",
        f"of width {width}, {trials} random networks and inputs each. q = ||z||^2 / n is the "
        "variance of",
        "the pre-activations, g = ||dL/dz||^2 / n that of the gradients (± standard error; "
        "theory:",
        "infinite width):",
        "",
        _table(head, rows),
        "",
        f"He gives each weight a variance of only 2/{width} = {2 / width:.4f}, yet q stays at "
        f"{he.q_mean[-1]:.3g}:",
        f"z_i adds {width} products w_ij a_j, so Var(z_i) = {width} x 2/{width} x E[a^2] = "
        "2 E[a^2];",
        "ReLU keeps half of each layer's signal, E[a^2] = q/2, and He's factor 2 restores it.",
        f"Xavier (variance 1/{width} here) loses that half at every layer: q^{depth} = "
        f"2^-{depth - 1} q^1,",
        "and the gradients fade towards the input the same way.",
        "",
        "Next: `fastvar explain` (one layer at a time), `fastvar simulate --help`, or your own",
        "network: `fastvar simulate --activation tanh --init xavier --correlation 0.5`.",
    ])
