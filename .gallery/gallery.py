"""Make the gallery of docs/pictures.md: ``python .gallery/gallery.py`` (needs fastvar[plot];
about 15 s, or 3-4 minutes with ``--sweeps``).

Writes relu_xavier_vs_he.png, tanh_gains.png, gradients.png, correlation_phases.png and
explain.png next to this file, and prints the walk-through of ``fastvar explain``, whose
histograms are explain.png.
With ``--sweeps`` also xi_c_vs_sigma_w2.png and phase_diagram.png, by the two
``fastvar sweep`` commands.
"""
import os
import sys

import fastvar
from fastvar.cli import main
from fastvar.plotting import save

HERE = os.path.dirname(os.path.abspath(__file__))
WIDTH, DEPTH, TRIALS = 256, 30, 1000


def run(**kwargs):
    return fastvar.simulate(fastvar.mlp(WIDTH, DEPTH, **kwargs), TRIALS, seed=0)


relu = [run(activation="relu", init=init) for init in ("xavier", "he")]
save(relu, os.path.join(HERE, "relu_xavier_vs_he.png"), labels=["Xavier", "He"],
     title=f"ReLU, {DEPTH} layers of width {WIDTH}: "
           "Xavier halves q and g at every layer, He keeps them")
tanh = [run(activation="tanh", init="xavier", gain=gain) for gain in (1.0, 5 / 3)]
save(tanh, os.path.join(HERE, "tanh_gains.png"), labels=["Xavier, gain 1", "Xavier, gain 5/3"],
     title=f"tanh, {DEPTH} layers of width {WIDTH}: gain 1 lets q decay, gain 5/3 holds q* "
           "but is chaotic (gradients grow backwards)")
save([relu[0], relu[1], tanh[0], tanh[1]], os.path.join(HERE, "gradients.png"), quantities=["g"],
     labels=["ReLU, Xavier", "ReLU, He", "tanh, Xavier", "tanh, Xavier gain 5/3"],
     title=f"Gradients from layer {DEPTH} back to layer 1 (width {WIDTH})")
main(["explain", "--plot", os.path.join(HERE, "explain.png")])

# order and chaos: the cosine of two inputs through tanh networks on either side of the line
SB2 = 0.05
CRIT = fastvar.theory.critical_sigma_w2("tanh", SB2)
phases = [("ordered", CRIT / 2), ("critical", CRIT), ("chaotic", 2.5 * CRIT)]
pairs = [fastvar.simulate(fastvar.mlp(1000, 30, activation="tanh", init=sw2, bias_std=SB2 ** 0.5),
                          4000, seed=1, correlation=0.6) for _, sw2 in phases]
save(pairs, os.path.join(HERE, "correlation_phases.png"), quantities=["c"],
     labels=[f"{name}, $\\sigma_w^2$={sw2:.2f}" for name, sw2 in phases],
     title="tanh, width 1000, $\\sigma_b^2$=0.05, two inputs with c0 = 0.6:\nordered nets "
           "align them (c -> 1), chaotic ones\ndecorrelate them (c -> c* = 0.14)")

# residual streams: ReLU ResNets under He, without a norm (alpha = 1, then 1/sqrt(L)) and pre-LN
from matplotlib.figure import Figure  # noqa: E402

from fastvar.plotting import write_figure  # noqa: E402

RES_DEPTH = 20
resnets = [("no norm, alpha = 1", dict(residual=1.0)),
           ("no norm, alpha = 1/sqrt(L)", dict(residual="1/sqrt(L)")),
           ("pre-LN, alpha = 1/sqrt(L)", dict(residual="1/sqrt(L)", norm="layer"))]
fig = Figure(figsize=(15.6, 4.2), layout="constrained")
for axis, (label, kwargs) in zip(fig.subplots(1, 3), resnets):
    res = fastvar.simulate(fastvar.mlp(WIDTH, RES_DEPTH, activation="relu", init="he", **kwargs),
                           TRIALS, seed=0)
    fastvar.plot(res, labels=[label], ax=axis)
    axis.set_title(label, fontsize="medium")
fig.suptitle(f"ReLU ResNets, He weights, {RES_DEPTH} blocks of width {WIDTH}: the stream's q "
             "doubles per block at alpha = 1, grows by (1 + 1/L) with 1/sqrt(L), linearly "
             "with pre-LN", fontsize="medium")
write_figure(fig, os.path.join(HERE, "residual.png"), dpi=110)

if "--sweeps" in sys.argv:  # the two sweep commands of docs/sweeps.md, as typed there
    main(["sweep", "--grid", "init=0.6:4.5:20", "--activation", "tanh", "--bias-std",
          "0.22360679775", "--width", "1000", "--depth", "30", "--trials", "4000",
          "--correlation", "0.6", "--plot", os.path.join(HERE, "xi_c_vs_sigma_w2.png")])
    main(["sweep", "--grid", "init=1:4:16", "--grid", "bias_std=0:0.6:7", "--activation", "tanh",
          "--width", "256", "--depth", "50", "--trials", "1000", "--plot-value", "log_g_ratio",
          "--plot", os.path.join(HERE, "phase_diagram.png")])
