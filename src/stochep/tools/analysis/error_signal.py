"""``stochep analyze error-signal``: the output error signal against the number of output
neurons (figures 5 and 6).

For ``N_perclass`` in {1, 10, 100} (10, 100 and 1,000 outputs) the setup's network (by default
the ``cifar10-5c`` preset, at initialisation, calibrated as the preset says:
:func:`~.common.network_at_init`) runs a free phase on
``samples`` test images. The output error signal is the gradient of the paper's squared error
on the output rates, slope factor included:

    e = 2 (rho(xi_out) - y) * rho'(xi_out),    rho' = kappa on (0, 1/kappa), 0 outside

Reported per setting: its summed magnitude ``sum |e|`` per sample (mean over samples) and the
percentage of its entries that are non-zero. The paper's claim: the magnitude grows with the
number of outputs while the non-zero share stays roughly flat.
"""
from __future__ import annotations

import torch

from .common import Setup, network_at_init, save, test_batch

N_PERCLASS = (1, 10, 100)


def error_signal(net, out_state: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``e = 2 (rho(xi) - y) rho'(xi)`` per output neuron, ``[B, outputs]``."""
    xi = out_state.flatten(1)
    kappa = net.neuron.gain
    slope = kappa * ((xi > 0) & (xi < 1.0 / kappa)).to(xi.dtype)
    return 2.0 * (net.neuron.rate(xi) - net.target(y, xi.dtype)) * slope


@torch.no_grad()
def run(setup: Setup, out_dir: str, n_perclass=N_PERCLASS) -> dict:
    result = {"analysis": "error-signal", "preset": setup.cfg.preset, "samples": setup.samples,
              "n_perclass": {}}
    for n in n_perclass:
        net, dynamics, rng = network_at_init(setup, int(n))
        x, y = test_batch(setup.data, net, setup.samples)
        free = dynamics.relax(net, x, net.zero_states(len(x), x.dtype), setup.cfg.T_free,
                              rng).final
        e = error_signal(net, free[-1], y)
        result["n_perclass"][str(n)] = {
            "outputs": e.shape[1], "magnitude": e.abs().sum(1).mean().item(),
            "nonzero_percent": 100.0 * (e != 0).float().mean().item()}

    def draw(plt):
        rows = result["n_perclass"]
        outs = [rows[k]["outputs"] for k in rows]
        fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
        a.bar([str(o) for o in outs], [rows[k]["magnitude"] for k in rows])
        a.set_xlabel("output neurons")
        a.set_ylabel("summed |error signal| per sample")
        b.bar([str(o) for o in outs], [rows[k]["nonzero_percent"] for k in rows])
        b.set_xlabel("output neurons")
        b.set_ylabel("non-zero entries (%)")
        fig.tight_layout()
        return fig

    result["files"] = save(result, out_dir, "error-signal", draw)
    return result
