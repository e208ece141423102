"""How wide is wide enough? The README's table and docs/images/finite_width.png.

``python docs/finite_width.py`` (needs fastvar[plot]; about a minute on 2 cores) measures
the excess kurtosis of one pre-activation unit, z_kurt, at depths 5, 10 and 20 of ReLU/He
and tanh/LeCun networks of widths 8 to 256 (fresh N(0, I) inputs, exact engine) and prints
it beside the finite-width theory (``z_kurt_theory``: the exact product for ReLU, the 1/n
vertex recursion for tanh) as a Markdown table. The SE of a measured z_kurt comes from
REPS independent runs (seeds 0..REPS-1): the spread of their estimates over sqrt(REPS).
Entries marked ! are layers the runs flag as heavy-tailed (``q_heavy_tails``): their
kurtosis is carried by networks too rare for the sample to contain, so the measurement
falls short and its SE is unreliable.
"""
import math
import os
import warnings

import numpy as np

import fastvar

HERE = os.path.dirname(os.path.abspath(__file__))
WIDTHS = (8, 16, 32, 64, 128, 256)
DEPTH, LAYERS = 20, (5, 10, 20)
TRIALS, REPS = 4000, 8
NETWORKS = {"ReLU, He": dict(activation="relu", init="he"),
            "tanh, LeCun": dict(activation="tanh", init="lecun")}


def measure(width: int, **kwargs) -> dict:
    """z_kurt per layer over REPS runs: mean, SE, theory, and the heavy-tail flag."""
    net = fastvar.mlp(width, DEPTH, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvar.IncompleteStatisticsWarning)
        runs = [fastvar.simulate(net, TRIALS, seed=seed, engine="exact", gradients=False)
                for seed in range(REPS)]
    kurt = np.array([res["z_kurt"] for res in runs])
    return {"mean": kurt.mean(axis=0), "se": kurt.std(axis=0, ddof=1) / math.sqrt(REPS),
            "theory": runs[0]["z_kurt_theory"],
            "heavy": np.any([res["q_heavy_tails"] for res in runs], axis=0)}


def cell(m: dict, layer: int) -> str:
    i = layer - 1
    flag = " !" if m["heavy"][i] else ""
    return f"{m['mean'][i]:.3g} ± {m['se'][i]:.2g}{flag} ({m['theory'][i]:.3g})"


def main() -> None:
    results = {name: {w: measure(w, **kw) for w in WIDTHS} for name, kw in NETWORKS.items()}
    print("| network | width | " + " | ".join(f"layer {l}" for l in LAYERS) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in LAYERS) + " |")
    for name, by_width in results.items():
        for w, m in by_width.items():
            print(f"| {name} | {w} | " + " | ".join(cell(m, l) for l in LAYERS) + " |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    layers = np.arange(1, DEPTH + 1)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(WIDTHS)))
    for ax, (name, by_width) in zip(axes, results.items()):
        for color, (w, m) in zip(colors, by_width.items()):
            ok = ~m["heavy"]
            ax.errorbar(layers[ok], m["mean"][ok], yerr=m["se"][ok], fmt="o", ms=3,
                        color=color, label=f"n = {w}")
            ax.plot(layers[~ok], m["mean"][~ok], "x", ms=4, color=color)
            ax.plot(layers, m["theory"], "-", lw=1, color=color)
        ax.set_yscale("log")
        ax.set_xlabel("layer l")
        ax.set_title(name)
    axes[0].set_ylabel("excess kurtosis of z (one unit)")
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle("Finite width: measured (dots ± SE; x: heavy-tailed, unreliable) vs theory "
                 "(lines: exact for ReLU, 1/n for tanh)", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.join(HERE, "images"), exist_ok=True)
    fig.savefig(os.path.join(HERE, "images", "finite_width.png"), dpi=80)


if __name__ == "__main__":
    main()
