"""Dynamical isometry by measurement: docs/images/jacobian.png and the table of docs/jacobian.md.

``python docs/jacobian_picture.py`` (needs fastvar[plot]; a few minutes on 2 cores) runs
tanh networks on the critical line at sigma_w = 1.05 (sigma_b^2 chosen so that chi_1 = 1,
inputs at the fixed point q*), orthogonal and Gaussian weights, depths 10 and 100, with
``simulate(jacobian=True)``, and draws the measured mean m1 and normalized spread
m2 / m1^2 - 1 of the Jacobian's squared singular values per layer (+- 2 SE) over the
infinite-width theory. ``--table`` instead prints the measured-vs-theory table of the
docs page (linear, ReLU and critical tanh at q* = 0.5).
"""
import os
import sys
import warnings

import numpy as np

import fastvar
from fastvar.theory import critical_sigma_w2, fixed_point

HERE = os.path.dirname(os.path.abspath(__file__))
WIDTH, SIGMA_W = 128, 1.05
NETWORKS = {10: 200, 100: 60}  # depth -> networks drawn


def critical_bias(sigma_w2: float) -> float:
    """sigma_b^2 on tanh's critical line at this sigma_w^2 (bisection: the critical
    sigma_w^2 grows with sigma_b^2)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if critical_sigma_w2("tanh", mid) < sigma_w2 else (lo, mid)
    return 0.5 * (lo + hi)


def at_fixed_point(width: int, depth: int, init, sw2: float, sb2: float, q_star: float,
                   networks: int, **kw) -> fastvar.Result:
    """A jacobian run whose input has q^1 = q* (so every layer sits at the fixed point)."""
    net = fastvar.mlp(width, depth, activation="tanh", init=init, bias_std=sb2 ** 0.5, **kw)
    x = np.full(width, ((q_star - sb2) / sw2) ** 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvar.IncompleteStatisticsWarning)
        return fastvar.simulate(net, networks, inputs=x, jacobian=True, gradients=False,
                                seed=depth)


def picture() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sw2 = SIGMA_W ** 2
    sb2 = critical_bias(sw2)
    q_star = fixed_point("tanh", sw2, sb2)[0]
    fig, axes = plt.subplots(2, 2, figsize=(9, 5.6), sharex="col")
    for col, (depth, networks) in enumerate(NETWORKS.items()):
        for init, kw, color, name in ((sw2, {}, "tab:red", "Gaussian"),
                                      ("orthogonal", {"gain": SIGMA_W}, "tab:blue",
                                       "orthogonal")):
            res = at_fixed_point(WIDTH, depth, init, sw2, sb2, q_star, networks, **kw)
            layers = res.layer
            for row, column in enumerate(("jac_m1", "jac_spread")):
                ax = axes[row, col]
                ax.errorbar(layers, res[column], 2 * res[column + "_se"], fmt="o", ms=2.5,
                            color=color, label=f"{name}, measured ({networks} networks)")
                ax.plot(layers, res[column + "_theory"], "-", color=color, lw=1,
                        label=f"{name}, theory")
        axes[0, col].set_title(f"depth {depth}, width {WIDTH}")
        axes[1, col].set_xlabel("layer l")
    axes[0, 0].set_ylabel("mean squared singular value m1")
    axes[1, 0].set_ylabel("spread m2 / m1² − 1")
    axes[1, 0].legend(fontsize=7)
    fig.suptitle(f"tanh on the critical line: σ_w = {SIGMA_W}, σ_b² = {sb2:.2e}, "
                 f"q* = {q_star:.3g}", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "images", "jacobian.png"), dpi=72)


CASES = {  # name -> (activation, init, Network keywords, tanh from q* = 0.5)
    "linear, Gaussian": ("linear", 1.0, {}, False),
    "linear, orthogonal": ("linear", "orthogonal", {}, False),
    "ReLU, He (Gaussian)": ("relu", 2.0, {}, False),
    "ReLU, orthogonal": ("relu", "orthogonal", {"gain": 2 ** 0.5}, False),
    "tanh q*=0.5, Gaussian": ("tanh", 1.68798, {"bias_std": 0.03804 ** 0.5}, True),
    "tanh q*=0.5, orthogonal": ("tanh", "orthogonal", {"gain": 1.68798 ** 0.5,
                                                       "bias_std": 0.03804 ** 0.5}, True),
}


def table(networks={100: 200, 200: 100}, depth=20) -> None:
    """Measured (± SE) vs theory at widths 100 and 200, depth 20, as a Markdown table."""
    print("| network | width | jac_m1 (theory) | jac_spread at l = 5 (theory) "
          f"| jac_spread at l = {depth} (theory) | jac_max at l = {depth} |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (act, init, kw, tanh) in CASES.items():
        for width, count in networks.items():
            net = fastvar.mlp(width, depth, activation=act, init=init, **kw)
            x = np.full(width, ((0.5 - 0.03804) / 1.68798) ** 0.5) if tanh else "normal"
            res = fastvar.simulate(net, count, inputs=x, jacobian=True, gradients=False,
                                   seed=1)
            m1, s = res.jac_m1, res.jac_spread

            def cell(values, i, theory):
                return (f"{values[i]:.4g} ± {res[theory.replace('_theory', '_se')][i]:.2g} "
                        f"({res[theory][i]:.4g})")
            print(f"| {name} | {width} | {cell(m1, -1, 'jac_m1_theory')} | "
                  f"{cell(s, 4, 'jac_spread_theory')} | {cell(s, -1, 'jac_spread_theory')} | "
                  f"{res.jac_max[-1]:.4g} ± {res.jac_max_se[-1]:.2g} |", flush=True)


if __name__ == "__main__":
    table() if "--table" in sys.argv else picture()
