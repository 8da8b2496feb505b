"""A trained network's free phase as a NIR graph, and the network back from one.

The free phase of the paper's neuron (eq. 7 with ``beta = 0``, dynamics.py) is, per layer ``i``,

    xi_i <- P[(1 - lam) xi_i + lam kappa (W_i s_{i-1} + b_i + W_{i+1}^T s_{i+1})],
    s_i ~ B(clamp(kappa xi_i, 0, 1)),

with ``P`` the clamp onto the state box ``[0, 1/kappa]``. In NIR's terms (one Euler step of
``dt``) the drive is two weight nodes per interaction, ``Affine(W_i, b_i)`` up and
``Linear(W_i^T)`` down, summed into the layer's neuron node; the membrane ``xi`` is a leaky
integrator with ``tau = dt / lam`` and input resistance ``r = kappa``. NIR has no stochastic
neuron, so the spike draw becomes a deterministic integrate-and-fire neuron driven by
``I = kappa xi`` with threshold 1. Reset by subtraction, it fires at the mean rate
``clamp(I, 0, 1)`` of the Bernoulli neuron (eq. 1); NIR's reset to ``v_reset = 0`` fires at
``1 / (floor(1 / I) + 1)`` instead (docs/deploy.md measures both). Two encodings of that neuron
(``neuron=``):

- ``"cubalif"`` (default): one ``CubaLIF`` node per layer. Its synaptic current is the leaky
  integrator ``xi`` (``tau_syn = dt / lam``, ``w_in = kappa``) and its membrane integrates it
  without leak (``tau_mem`` :data:`TAU_MEM`, ``r = tau_mem / dt``) up to ``v_threshold =
  1 / kappa``, then resets to 0. snnTorch's NIR importer runs it (``execute.run_snntorch``).
- ``"li-if"``: ``LI -> Scale(kappa) -> IF(threshold 1)``, the same neuron in three nodes.

What NIR cannot carry is kept in metadata (graph-level ``stochep_*`` keys, and per node): the
spike draw (Bernoulli or Poisson, eq. 1 / 21, and its ``dt``), the state box (the leaky
integrator has no clamp: its fixed point ``xi = kappa drive`` gives the same rate
``clamp(kappa^2 drive, 0, 1)`` as the clamped one), ``T_free``, the update order, the readout
(``n_classes`` groups of ``n_perclass`` output neurons, the mean rate over the last
``readout_average`` steps, and for spikes the counting window ``spike_window``), ``lam``,
``kappa`` and the output cost. A layer NIR cannot express (max-pooled convolution, Hopfield
attention) is one :class:`NIRExportError` naming it.
"""
from __future__ import annotations

import json

import numpy as np
import torch

FORMAT = "stochep-nir-v1"
DT = 1e-4  # NIR time step of one free-phase step (snnTorch's NIR importer assumes this dt)
TAU_MEM = 1e3  # the integrate-and-fire membrane's time constant: no leak within a phase
NEURON_ENCODINGS = ("cubalif", "li-if")


class NIRExportError(ValueError):
    """A network (or a NIR graph) that this mapping cannot carry; the message names the part."""


def require_nir():
    """The ``nir`` module, or one :class:`NIRExportError` line saying how to install it."""
    try:
        import nir
    except ImportError:
        raise NIRExportError("NIR export needs the 'nir' package: pip install 'stochep[nir]'") \
            from None
    return nir


def _layer_kind(inter) -> str:
    from stochep.registry import INTERACTIONS

    for name in INTERACTIONS:
        if type(inter) is INTERACTIONS[name]:
            return name
    return type(inter).__name__


def check_exportable(net) -> None:
    """One :class:`NIRExportError` naming the first part of ``net`` NIR cannot carry."""
    from stochep.engine.interactions import Dense
    from stochep.engine.neurons.hard_sigmoid import Neuron

    neuron = net.neuron
    if not isinstance(neuron, Neuron):
        raise NIRExportError(f"neuron {getattr(neuron, 'name', type(neuron).__name__)!r} is not "
                             "exported to NIR; only the paper's hard-sigmoid neuron is")
    if neuron.box != "kappa":
        raise NIRExportError(f"state box {neuron.box!r} is not exported to NIR; only box "
                             "'kappa' (states in [0, 1/kappa]) is")
    for i, inter in enumerate(net.interactions):
        if not isinstance(inter, Dense):
            kind = _layer_kind(inter)
            why = {"attention": "Hopfield attention (a softmax over keys) has no NIR node",
                   "conv": "NIR has no max-pooling and no reshape for the feedback edge"}.get(
                       kind, "it has no NIR mapping")
            raise NIRExportError(f"layer {i + 1} is a {kind!r} layer, which NIR export does not "
                                 f"support ({why}); only dense layers are exported")


def _f32(t) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().to(torch.float32).numpy())


def _full(n: int, value: float) -> np.ndarray:
    return np.full(n, value, dtype=np.float32)


def _neuron_nodes(nir, name: str, n: int, lam: float, kappa: float, dt: float, encoding: str,
                  meta: dict, theta: float) -> tuple[dict, list, str, str]:
    """Nodes of one layer's neuron: (nodes, internal edges, entry node, exit node)."""
    if encoding == "cubalif":
        node = nir.CubaLIF(tau_syn=_full(n, dt / lam), tau_mem=_full(n, TAU_MEM),
                           r=_full(n, TAU_MEM / dt), v_leak=_full(n, 0.0),
                           v_threshold=_full(n, theta / kappa), v_reset=_full(n, 0.0),
                           w_in=_full(n, kappa), metadata=meta)
        return {name: node}, [], name, name
    li, scale = f"{name}.li", f"{name}.scale"
    nodes = {li: nir.LI(tau=_full(n, dt / lam), r=_full(n, kappa), v_leak=_full(n, 0.0),
                        metadata={**meta, "stochep_role": "membrane xi (no clamp)"}),
             scale: nir.Scale(scale=_full(n, kappa)),
             name: nir.IF(r=_full(n, 1.0 / dt), v_threshold=_full(n, theta),
                          v_reset=_full(n, 0.0), metadata=meta)}
    return nodes, [(li, scale), (scale, name)], li, name


def _settings(net, steps, readout_average, update, spike_window) -> dict:
    inf = net.inference
    steps = int(steps if steps is not None else inf.steps)
    avg = int(readout_average if readout_average is not None else inf.readout_average)
    dyn = inf.dynamics
    update = update or (dyn.update if dyn is not None else "sync")
    window = int(spike_window if spike_window is not None else max(avg, steps // 2))
    for key, v in (("steps", steps), ("readout_average", avg), ("spike_window", window)):
        if v < 1:
            raise NIRExportError(f"{key} must be >= 1, got {v}")
    if window > steps or avg > steps:
        raise NIRExportError(f"the readout window ({max(window, avg)} steps) is longer than the "
                             f"free phase ({steps} steps)")
    return {"T_free": steps, "readout_average": avg, "update": update, "spike_window": window}


def export_nir(net, path=None, *, neuron: str = "cubalif", steps: int | None = None,
               readout_average: int | None = None, update: str | None = None,
               spike_window: int | None = None, dt: float = DT,
               threshold_scale: float = 1.0):
    """The free phase of ``net`` as a ``nir.NIRGraph`` (module docstring), written to ``path``
    (HDF5, ``nir.write``) when given.

    ``steps``, ``readout_average`` and ``update`` default to the network's own
    (:attr:`EPNetwork.inference`: a Trainer's run sets ``T_free`` and its readout);
    ``spike_window``: the steps at the end whose output spikes a simulator counts (default
    half the phase, at least ``readout_average``). ``threshold_scale``: the integrate-and-fire
    threshold in units of the rate argument's (1 for ``kappa xi``); below 1 it makes up part of
    the charge a reset to zero discards (docs/deploy.md chose 0.9 on held-out training images).
    Weights are written as float32.
    """
    nir = require_nir()
    check_exportable(net)
    if neuron not in NEURON_ENCODINGS:
        raise NIRExportError(f"neuron encoding must be one of {', '.join(NEURON_ENCODINGS)}, "
                             f"got {neuron!r}")
    settings = _settings(net, steps, readout_average, update, spike_window)
    if isinstance(threshold_scale, bool) or not isinstance(threshold_scale, (int, float)) \
            or not threshold_scale > 0:
        raise NIRExportError(f"threshold_scale must be a number > 0, got {threshold_scale!r}")
    lam, nrn = net.lam, net.neuron
    kappa = float(nrn.kappa)
    spike_draw = {"bernoulli": "Bernoulli(clamp(kappa xi, 0, 1)) per step (eq. 1)",
                  "poisson": "1 - exp(-clamp(kappa xi, 0, 1) dt) per step (eq. 21)",
                  "rate": "none: the rate itself (mean field)"}[nrn.spikes]
    n_layers = len(net.interactions)
    nodes = {"input": nir.Input(input_type={"input": np.array([int(np.prod(net.input_shape))])})}
    edges = []
    below, below_entry = "input", None
    layer_names = [f"layer{i + 1}" for i in range(n_layers)]
    for i, inter in enumerate(net.interactions):
        name = layer_names[i]
        n = inter.out_shape[0]
        meta = {"stochep_layer": i + 1, "stochep_spike_draw": spike_draw,
                "stochep_state_box": np.array([0.0, 1.0 / kappa]),
                "stochep_rate": "clamp(kappa * xi, 0, 1)"}
        nnodes, nedges, entry, exit_ = _neuron_nodes(nir, name, n, lam, kappa, dt, neuron, meta,
                                                     float(threshold_scale))
        up = f"up{i + 1}"
        # nodes in the order signals flow (nirtorch's executor wires them in dict order and
        # needs a layer's feed-forward input before its feedback)
        nodes[up] = nir.Affine(weight=_f32(inter.weight), bias=_f32(inter.bias)
                               if inter.bias is not None else _full(n, 0.0),
                               metadata={"stochep_edge": "up", "stochep_interaction": "dense",
                                         "stochep_has_bias": int(inter.bias is not None)})
        nodes.update(nnodes)
        edges += [(below, up), (up, entry), *nedges]
        if i > 0:  # the tied feedback W^T from this layer into the one below
            down = f"down{i}"
            nodes[down] = nir.Linear(weight=_f32(inter.weight.t()),
                                     metadata={"stochep_edge": "down", "stochep_tied_to": up})
            edges += [(exit_, down), (down, below_entry)]
        below, below_entry = exit_, entry
    n_out = net.n_classes * net.n_perclass
    nodes["output"] = nir.Output(output_type={"output": np.array([n_out])})
    edges.append((below, "output"))
    info = {"format": FORMAT, "lam": lam, "kappa": kappa, "box": nrn.box, "spikes": nrn.spikes,
            "spike_dt": float(nrn.dt), "dt": dt, "neuron": neuron, "n_classes": net.n_classes,
            "n_perclass": net.n_perclass, "cost": _cost_name(net),
            "threshold_scale": float(threshold_scale), **settings}
    meta = {f"stochep_{k}": v for k, v in info.items()}
    meta["stochep_json"] = json.dumps(info, sort_keys=True)
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)
    if path is not None:
        try:
            nir.write(str(path), graph)
        except OSError as e:
            raise NIRExportError(f"cannot write {path}: {e.strerror or e}") from None
    return graph


def _cost_name(net) -> str:
    from stochep.registry import COSTS

    for name in COSTS:
        if type(net.cost) is COSTS[name]:
            return name
    return "state"


def stochep_info(graph) -> dict:
    """The stochep settings a graph's metadata holds; one :class:`NIRExportError` if it has
    none (a graph that stochep did not write)."""
    raw = (graph.metadata or {}).get("stochep_json")
    if raw is None:
        raise NIRExportError("the NIR graph has no stochep metadata (stochep_json); load_nir "
                             "reads graphs that export_nir wrote")
    info = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    if info.get("format") != FORMAT:
        raise NIRExportError(f"the NIR graph has format {info.get('format')!r}; this stochep "
                             f"reads {FORMAT}")
    return info


def read_graph(path):
    """``nir.read(path)``; a missing or unreadable file is one :class:`NIRExportError` line."""
    import os

    nir = require_nir()
    if not os.path.isfile(str(path)):
        raise NIRExportError(f"NIR file {path} does not exist")
    try:
        return nir.read(str(path))
    except Exception as e:  # noqa: BLE001 -- h5py and nir raise many kinds
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise NIRExportError(f"{path} is not a readable NIR file ({first})") from None


def load_nir(source):
    """The :class:`EPNetwork` a graph written by :func:`export_nir` describes (a path or a
    ``nir.NIRGraph``): the same weights, neuron, ``lam``, output groups and cost, and its
    ``inference`` set to the exported free phase (steps, readout, update order)."""
    from stochep.engine.dynamics import Dynamics
    from stochep.engine.interactions import Dense
    from stochep.engine.network import EPNetwork, Inference
    from stochep.engine.neurons.hard_sigmoid import Neuron

    graph = read_graph(source) if not hasattr(source, "nodes") else source
    info = stochep_info(graph)
    inters, i = [], 1
    while f"up{i}" in graph.nodes:
        up = graph.nodes[f"up{i}"]
        w = torch.from_numpy(np.array(up.weight, dtype=np.float32))
        has_bias = bool(int((up.metadata or {}).get("stochep_has_bias", 1)))
        d = Dense(w.shape[1], w.shape[0], bias=has_bias)
        with torch.no_grad():
            d.weight.copy_(w)
            if has_bias:
                d.bias.copy_(torch.from_numpy(np.array(up.bias, dtype=np.float32)))
        if i > 1:
            down = graph.nodes.get(f"down{i - 1}")
            if down is None or not np.array_equal(np.array(down.weight), w.numpy().T):
                raise NIRExportError(f"down{i - 1} is not the transpose of up{i}: the free "
                                     "phase's couplings are symmetric (tied weights)")
        inters.append(d)
        i += 1
    if not inters:
        raise NIRExportError("the NIR graph has no up1 node: not a stochep export")
    neuron = Neuron(info["kappa"], info["spikes"], info["spike_dt"], info["box"])
    net = EPNetwork(inters, neuron, info["lam"], info["n_classes"], info["n_perclass"],
                    info["cost"])
    net.inference = Inference(steps=info["T_free"], readout_average=info["readout_average"],
                              dynamics=Dynamics(info["update"]))
    return net


def export_checkpoint(checkpoint: str, out: str, **options):
    """:func:`export_nir` of the network in a checkpoint, with the weights its run scores with
    (the moving average where the run keeps one) and its free phase's settings; returns the
    graph. A missing or damaged checkpoint is one ``CheckpointError`` line."""
    from contextlib import nullcontext

    from stochep.training.trainer import Trainer

    require_nir()
    net = Trainer.from_checkpoint(checkpoint, score_only=True).net
    weights = net.inference.weights
    with weights.applied(net) if weights is not None else nullcontext():
        return export_nir(net, out, **options)
