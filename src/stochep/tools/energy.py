"""Operation and energy accounting, paper section 5.1.

Layers are ``0`` (the clamped input, not spiking) and ``1..N`` (hidden layers and the output);
interaction ``i`` couples layer ``i-1`` to layer ``i``. Counts are per sample and per time step
unless stated otherwise; a free + nudged inference runs ``T_free + T_nudge`` steps.

- MACs of interaction ``i`` for one unidirectional pass, eq. 16: ``C_in K_H K_W C_out O_H O_W``
  for a convolution (``O`` the convolution's output size, before pooling) and ``I_F O_F`` for a
  dense layer (biases not counted), from each interaction's ``macs()``.
- Both directions of the convergent network are counted with the same formula (section 5.1), so
  every total is 2 x the unidirectional count: the forward (up) pass of each interaction and its
  backward (feedback, down) pass. The feedback of interaction 1 into the clamped input is counted
  too, although the dynamics never need it (:mod:`stochep.engine.dynamics`).
- Full-precision model: an equally shaped network whose readout has ``fp_outputs`` (default 10)
  neurons; every operation is a MAC: ``MAC_tot = 2 sum_i MAC_i``.
- Spiking model, the readout inflated to ``snn_outputs`` (default 700, the paper's worst case).
  ``IFR_j`` is the firing rate of layer ``j``: sampled spikes averaged over neurons, samples and
  the ``T_free + T_nudge`` steps of a free then nudged phase. A pass costs accumulations only
  for the spikes it carries, so it is weighted by the rate of its PRESYNAPTIC layer:

      forward  of interaction i:  i = 1: MAC_1 MACs (the input is a real-valued intensity);
                                  i > 1: IFR_{i-1} MAC_i ACs
      backward of interaction i:  IFR_i MAC_i ACs (spikes of the upper layer)

  The paper writes ``AC_tot = sum_i IFR_i MAC_i`` (per direction) with ``IFR_i`` the rate of
  layer ``i``, i.e. both directions weighted by the rate of the layer interaction ``i`` feeds
  and the input pass counted as ACs; that reading is reported too (``paper_convention``).
- Energy: 4.6 pJ per MAC, 0.9 pJ per AC (Han et al. 2015); the reduction is
  ``E_full-precision / E_SNN``.
- Predictive coding (eq. 17), which deterministic spiking EP needs and stochastic EP does not,
  adds per layer of ``I`` neurons and per step ``4I`` multiplications and ``4I`` additions, and
  ``3I`` memory units (``Dec``, ``Enc``, ``V``) held throughout.

Our dynamics compute the clamped input's drive once per phase rather than every step; the per
step convention above (the paper's) ignores that, for both models alike.
"""
from __future__ import annotations

import math

import torch

E_MAC_PJ = 4.6
E_AC_PJ = 0.9
PAPER_RATES = {"2FC": [0.21, 0.19, 0.12], "2C": [0.27, 0.19, 0.10]}
PAPER_REDUCTION = {"2FC": 19, "2C": 23}
CONVENTIONS = ("presynaptic", "paper")


# ---- operation counts -------------------------------------------------------------------------
def conv_macs(c_in: int, c_out: int, k_h: int, k_w: int, o_h: int, o_w: int) -> int:
    """Eq. 16, convolutional layer: ``C_in K_H K_W C_out O_H O_W``."""
    return c_in * k_h * k_w * c_out * o_h * o_w


def dense_macs(i_f: int, o_f: int) -> int:
    """Eq. 16, dense layer: ``I_F O_F``."""
    return i_f * o_f


def layer_macs(net, n_out: int | None = None) -> list[int]:
    """Unidirectional MACs of each interaction (eq. 16), the readout resized to ``n_out``."""
    macs = [int(inter.macs()) for inter in net.interactions]
    if n_out is not None:
        macs[-1] = readout_macs(net, n_out)
    return macs


def readout_macs(net, n_out: int) -> int:
    """MACs of the dense readout (top interaction) if it had ``n_out`` output neurons."""
    return dense_macs(math.prod(net.interactions[-1].in_shape), n_out)


def _check_rates(rates, n: int) -> list[float]:
    rates = [float(r) for r in rates]
    if len(rates) != n:
        raise ValueError(f"rates: need one firing rate per layer (hidden layers and output: "
                         f"{n}), got {len(rates)}")
    if any(not 0.0 <= r <= 1.0 for r in rates):
        raise ValueError(f"rates must be in [0, 1], got {rates}")
    return rates


def snn_ops(layer_macs_snn, rates, convention: str = "presynaptic") -> dict:
    """Per-step MACs and ACs of the spiking model, both directions (module docstring)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    macs = [int(m) for m in layer_macs_snn]
    rates = _check_rates(rates, len(macs))
    rows = []
    for i, m in enumerate(macs):
        if convention == "paper":
            fwd_mac, fwd_ac, bwd_ac = 0, rates[i] * m, rates[i] * m
        else:
            fwd_mac, fwd_ac = (m, 0.0) if i == 0 else (0, rates[i - 1] * m)
            bwd_ac = rates[i] * m
        rows.append({"macs": m, "forward_mac": fwd_mac, "forward_ac": fwd_ac,
                     "backward_ac": bwd_ac})
    return {"convention": convention, "layers": rows,
            "mac": sum(r["forward_mac"] for r in rows),
            "ac": sum(r["forward_ac"] + r["backward_ac"] for r in rows)}


def energy_pj(mac: float, ac: float, e_mac: float = E_MAC_PJ, e_ac: float = E_AC_PJ) -> float:
    return mac * e_mac + ac * e_ac


def energy_reduction(layer_macs_fp, layer_macs_snn, rates, e_mac: float = E_MAC_PJ,
                     e_ac: float = E_AC_PJ, convention: str = "presynaptic") -> float:
    """``E_full-precision / E_SNN``: ``2 sum MAC_fp`` MACs against the spiking model's ops."""
    fp = 2 * sum(int(m) for m in layer_macs_fp)
    snn = snn_ops(layer_macs_snn, rates, convention)
    return energy_pj(fp, 0, e_mac, e_ac) / energy_pj(snn["mac"], snn["ac"], e_mac, e_ac)


def predictive_coding_overhead(layer_sizes, steps: int = 1) -> list[dict]:
    """Eq. 17 per layer of ``I`` neurons: ``4I`` mults and ``4I`` adds per step (times
    ``steps``), ``3I`` memory units."""
    return [{"neurons": int(n), "mults_per_step": 4 * int(n), "adds_per_step": 4 * int(n),
             "memory_units": 3 * int(n), "mults": 4 * int(n) * steps, "adds": 4 * int(n) * steps}
            for n in layer_sizes]


# ---- firing rates -----------------------------------------------------------------------------
class SpikeCounter:
    """A phase observer (``Dynamics.relax(observer=...)``): sums the spikes of every layer."""

    def __init__(self):
        self.sums: list[float] = []
        self.counts: list[int] = []

    def __call__(self, t: int, spikes: list[torch.Tensor]) -> None:
        if not self.sums:
            self.sums, self.counts = [0.0] * len(spikes), [0] * len(spikes)
        for k, s in enumerate(spikes):
            self.sums[k] += s.double().sum().item()
            self.counts[k] += s.numel()

    def rates(self) -> list[float]:
        return [s / c for s, c in zip(self.sums, self.counts)]


@torch.no_grad()
def measure_firing_rates(net, x: torch.Tensor, y: torch.Tensor, T_free: int, T_nudge: int,
                         beta: float, rng) -> list[float]:
    """IFR of layers 1..N: spikes sampled over ``T_free`` free then ``T_nudge`` nudged steps
    (eq. 7, 8), averaged over neurons, samples and steps."""
    from stochep.engine.dynamics import Dynamics

    net.check_batch(x, y)
    target = net.target(y, x.dtype)
    counter, dyn = SpikeCounter(), Dynamics()
    free = dyn.relax(net, x, net.zero_states(x.shape[0], x.dtype), T_free, rng,
                     observer=counter)
    dyn.relax(net, x, free.final, T_nudge, rng, beta, target, observer=counter)
    return counter.rates()


# ---- the report -------------------------------------------------------------------------------
def energy_report(net, rates, steps: int, snn_outputs: int = 700, fp_outputs: int = 10,
                  e_mac: float = E_MAC_PJ, e_ac: float = E_AC_PJ) -> dict:
    """Everything ``stochep energy`` prints, for ``net`` and per-layer ``rates``."""
    for name, v in (("snn_outputs", snn_outputs), ("fp_outputs", fp_outputs)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    rates = _check_rates(rates, len(net.interactions))
    macs_snn = layer_macs(net, snn_outputs)
    macs_fp = layer_macs(net, fp_outputs)
    fp_mac = 2 * sum(macs_fp)
    e_fp = energy_pj(fp_mac, 0, e_mac, e_ac)
    out = {"net_outputs": math.prod(net.layer_shapes[-1]), "snn_outputs": snn_outputs,
           "fp_outputs": fp_outputs, "rates": rates, "e_mac_pj": e_mac, "e_ac_pj": e_ac,
           "steps": steps, "layer_macs_snn": macs_snn, "layer_macs_fp": macs_fp,
           "full_precision": {"mac_per_step": fp_mac, "energy_pj_per_step": e_fp}}
    for conv in CONVENTIONS:
        ops = snn_ops(macs_snn, rates, conv)
        e = energy_pj(ops["mac"], ops["ac"], e_mac, e_ac)
        out["snn" if conv == "presynaptic" else "paper_convention"] = {
            **ops, "energy_pj_per_step": e, "reduction": e_fp / e}
    pc = predictive_coding_overhead([math.prod(s) for s in net.layer_shapes], steps)
    out["predictive_coding"] = {
        "layers": pc, "mults_per_step": sum(r["mults_per_step"] for r in pc),
        "adds_per_step": sum(r["adds_per_step"] for r in pc),
        "memory_units": sum(r["memory_units"] for r in pc),
        "mults": sum(r["mults"] for r in pc), "adds": sum(r["adds"] for r in pc)}
    return out


def _n(v: float) -> str:
    return f"{v:,.0f}"


def format_report(rep: dict) -> str:
    snn, paper = rep["snn"], rep["paper_convention"]
    lines = [(f"{'layer':<6}{'MAC fp':>12}{'MAC snn':>12}{'IFR':>7}{'fwd MAC':>12}"
              f"{'fwd AC':>12}{'bwd AC':>12}")]
    for i, (mf, r, row) in enumerate(zip(rep["layer_macs_fp"], rep["rates"], snn["layers"])):
        lines.append(f"{i + 1:<6}{_n(mf):>12}{_n(row['macs']):>12}{r:>7.3f}"
                     f"{_n(row['forward_mac']):>12}{_n(row['forward_ac']):>12}"
                     f"{_n(row['backward_ac']):>12}")
    fp = rep["full_precision"]
    lines.append(f"per sample and step, both directions (2 x unidirectional); readout "
                 f"{rep['fp_outputs']} outputs (full precision) vs {rep['snn_outputs']} (SNN; "
                 f"the network has {rep['net_outputs']})")
    lines.append(f"full precision: {_n(fp['mac_per_step'])} MAC = "
                 f"{fp['energy_pj_per_step'] / 1e6:.3f} uJ")
    lines.append(f"SNN (presynaptic rates): {_n(snn['mac'])} MAC + {_n(snn['ac'])} AC = "
                 f"{snn['energy_pj_per_step'] / 1e6:.3f} uJ -> reduction {snn['reduction']:.1f}x")
    lines.append(f"SNN (paper's reading, AC = IFR_i MAC_i, input as ACs): {_n(paper['ac'])} AC = "
                 f"{paper['energy_pj_per_step'] / 1e6:.3f} uJ -> reduction "
                 f"{paper['reduction']:.1f}x")
    lines.append(f"energy: {rep['e_mac_pj']} pJ/MAC, {rep['e_ac_pj']} pJ/AC (Han et al. 2015)")
    pc = rep["predictive_coding"]
    lines.append(f"predictive coding (eq. 17) would add per sample over {rep['steps']} steps: "
                 f"{_n(pc['mults'])} mults, {_n(pc['adds'])} adds "
                 f"({_n(pc['mults_per_step'])} + {_n(pc['adds_per_step'])} per step; "
                 f"{_n(snn['ac'])} synaptic ACs per step), {_n(pc['memory_units'])} memory units")
    for i, r in enumerate(pc["layers"]):
        lines.append(f"  layer {i + 1}: I={r['neurons']}: 4I={r['mults_per_step']} mults, "
                     f"4I={r['adds_per_step']} adds per step, 3I={r['memory_units']} memory units")
    return "\n".join(lines)


def run_energy(cfg, checkpoint: dict | None = None, data_dir: str | None = None, rates=None,
               n_samples: int = 128, snn_outputs: int = 700, fp_outputs: int = 10) -> dict:
    """``stochep energy``: build (or load) the network, measure or take the rates, report."""
    from stochep.data import DATASETS, dataset_shape
    from stochep.engine.rng import SpikeRNG
    from stochep.training.checkpoint import load_model_state
    from stochep.training.models import build_network
    from stochep.validation import check_int_at_least

    check_int_at_least("samples", n_samples, 1)
    data = None
    if checkpoint is not None:
        input_shape, n_classes = tuple(checkpoint["input_shape"]), checkpoint["n_classes"]
    elif rates is not None and cfg.dataset in DATASETS:
        input_shape, n_classes = dataset_shape(cfg.dataset)
    else:
        data = cfg.load_data(data_dir)
        input_shape, n_classes = data.input_shape, data.n_classes
    embedding = (checkpoint["model"].get("interactions.0.embedding") if checkpoint is not None
                 else getattr(data, "embedding", None))
    net = build_network(cfg, input_shape, n_classes, embedding)
    if checkpoint is not None:
        load_model_state(net, checkpoint["model"])
    steps = cfg.T_free + cfg.T_nudge
    if rates is not None:
        source = "given (--rates)"
    else:
        data = data or cfg.load_data(data_dir)
        x = data.x_test[:n_samples]
        x = x.reshape(len(x), *net.input_shape).to(net.interactions[0].weight.dtype)
        rates = measure_firing_rates(net, x, data.y_test[:n_samples], cfg.T_free, cfg.T_nudge,
                                     cfg.beta, SpikeRNG(cfg.seed))
        source = (f"measured on {len(x)} {cfg.dataset} test samples over {cfg.T_free} free + "
                  f"{cfg.T_nudge} nudged steps, "
                  + ("trained weights (checkpoint)" if checkpoint is not None else
                     "FRESH (untrained) initialisation; pass --checkpoint for trained weights"))
    rep = energy_report(net, rates, steps, snn_outputs, fp_outputs)
    rep.update({"preset": cfg.preset, "dataset": cfg.dataset, "layers": cfg.layers,
                "rates_source": source, "T_free": cfg.T_free, "T_nudge": cfg.T_nudge})
    return rep
