"""``stochep analyze mean-field``: Theorem 3.1 in numbers.

Along a mean-field free-phase trajectory ``xi_t`` of the setup's network (at initialisation,
on ``samples`` test images), the deterministic energy ``E(x, xi_t)`` (eq. 3) against the
Monte-Carlo mean of the stochastic energy ``E_stoch(x, xi_t, s)`` (eq. 5) over ``draws`` spike
samples ``s ~ B(rho(xi_t))``, per step (mean over the images), with the standard error of the
Monte-Carlo mean. The theorem says they are equal in expectation: ``|gap| / stderr`` stays of
order 1.
"""
from __future__ import annotations

import torch

from stochep.engine.dynamics import Dynamics
from stochep.engine.neurons import Neuron
from stochep.engine.rng import SpikeRNG
from stochep.training.trainer import Trainer

from .common import Setup, save, test_batch

DRAWS = 200


@torch.no_grad()
def run(setup: Setup, out_dir: str, draws: int = DRAWS) -> dict:
    tr = Trainer(setup.config(), setup.data, progress=False)
    net = tr.net
    x, _ = test_batch(tr.data, tr.net, setup.samples)
    x = x.double()
    net = net.double()
    spiking = Neuron(net.neuron.gain, "bernoulli")
    rng = SpikeRNG(0, x.device)
    states, steps = net.zero_states(len(x), torch.float64), []
    for t in range(1, tr.cfg.T_free + 1):
        states = Dynamics().relax(net, x, states, 1, neuron=spiking.mean_field()).final
        e = net.energy(x, states).mean().item()
        rates = net.rates(states)
        samples = torch.stack([net.energy_stoch(x, states, spiking.sample(rates, rng)).mean()
                               for _ in range(draws)])
        mean, se = samples.mean().item(), samples.std().item() / draws ** 0.5
        steps.append({"step": t, "E": e, "E_stoch_mean": mean, "stderr": se,
                      "z": (mean - e) / se if se > 0 else 0.0})
    result = {"analysis": "mean-field", "preset": setup.cfg.preset, "samples": setup.samples,
              "draws": draws, "steps": steps,
              "max_abs_z": max(abs(s["z"]) for s in steps),
              "max_rel_gap": max(abs(s["E_stoch_mean"] - s["E"]) / max(abs(s["E"]), 1e-12)
                                 for s in steps)}

    def draw(plt):
        fig, ax = plt.subplots(figsize=(5, 3.4))
        t = [s["step"] for s in steps]
        ax.plot(t, [s["E"] for s in steps], label="E (mean field)")
        m = [s["E_stoch_mean"] for s in steps]
        se = [2 * s["stderr"] for s in steps]
        ax.errorbar(t, m, yerr=se, fmt=".", ms=3, label=f"mean E_stoch ({draws} draws, 2 se)")
        ax.set_xlabel("free-phase step")
        ax.set_ylabel("energy (mean over images)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

    result["files"] = save(result, out_dir, "mean-field", draw)
    return result
