"""Running a NIR graph for a number of time steps: a reference executor of NIR's node equations
written here, and snnTorch's NIR importer.

Both return the output node's values at every step, ``[steps, B, n_out]`` (spikes for a spiking
output neuron), for an input held constant over the phase (the clamped input of eq. 7, read as a
current, not as spikes).

:func:`run_reference` integrates each neuron node's equation (NIR's definitions, ``nir.ir``)
with one explicit Euler step of ``dt`` per time step:

- ``LI``:      ``v += dt / tau (v_leak - v + r I)``, output ``v``;
- ``IF``:      ``v += dt r I``; spike ``z = [v > v_threshold]``; ``v <- v_reset`` where ``z``;
- ``LIF``:     ``v += dt / tau (v_leak - v + r I)``, then as ``IF``;
- ``CubaLIF``: ``I_s += dt / tau_syn (w_in S - I_s)``, ``v += dt / tau_mem (v_leak - v + r I_s)``,
  then as ``IF``;
- ``Affine``, ``Linear``, ``Scale``, ``Threshold``: instantaneous.

``reset="subtract"`` replaces the reset to ``v_reset`` by a subtraction of ``v_threshold`` (not
NIR's definition; it is the reset the rate argument of graph.py assumes). Nodes run in
breadth-first order from the input; an edge from a node not yet run in this step (a feedback
edge) delivers that node's value from the previous step, as nirtorch's executor does.
"""
from __future__ import annotations

import contextlib
import copy
import io
from collections import deque

import numpy as np
import torch

from .graph import DT, NIRExportError, require_nir

RESETS = ("nir", "subtract")


def _order(graph) -> list[str]:
    """Node names breadth-first from the input node(s); unreachable nodes are an error."""
    nir = require_nir()
    starts = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(starts) != 1:
        raise NIRExportError(f"the graph needs exactly one Input node, found {len(starts)}")
    seen, order, queue = set(starts), [], deque(starts)
    while queue:
        k = queue.popleft()
        order.append(k)
        for a, b in graph.edges:
            if a == k and b not in seen:
                seen.add(b)
                queue.append(b)
    missing = sorted(set(graph.nodes) - seen)
    if missing:
        raise NIRExportError(f"node(s) {', '.join(missing)} cannot be reached from the input")
    return order


def _t(a, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64)).to(dtype)


class _Node:
    """One node's step function and state."""

    def __init__(self, node, dt: float, reset: str):
        nir = require_nir()
        self.kind = type(node).__name__
        self.state: dict = {}
        p = {}
        if isinstance(node, (nir.Affine, nir.Linear)):
            p["w"] = _t(node.weight)
            p["b"] = _t(node.bias) if isinstance(node, nir.Affine) else None
        elif isinstance(node, nir.Scale):
            p["s"] = _t(node.scale)
        elif isinstance(node, nir.Threshold):
            p["thr"] = _t(node.threshold)
        elif isinstance(node, nir.LI):
            p["a"], p["g"] = _t(dt / node.tau), _t(dt / node.tau * node.r)
            p["leak"] = _t(dt / node.tau * node.v_leak)
        elif isinstance(node, nir.IF):
            p["a"], p["g"], p["leak"] = None, _t(dt * node.r), None
        elif isinstance(node, nir.LIF):
            p["a"], p["g"] = _t(dt / node.tau), _t(dt / node.tau * node.r)
            p["leak"] = _t(dt / node.tau * node.v_leak)
        elif isinstance(node, nir.CubaLIF):
            p["sa"], p["sg"] = _t(dt / node.tau_syn), _t(dt / node.tau_syn * node.w_in)
            p["a"], p["g"] = _t(dt / node.tau_mem), _t(dt / node.tau_mem * node.r)
            p["leak"] = _t(dt / node.tau_mem * node.v_leak)
        elif not isinstance(node, (nir.Input, nir.Output)):
            raise NIRExportError(f"the reference executor has no {self.kind} node")
        if isinstance(node, (nir.IF, nir.LIF, nir.CubaLIF)):
            p["thr"], p["reset"] = _t(node.v_threshold), _t(node.v_reset)
        self.p, self.subtract = p, reset == "subtract"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        p, k = self.p, self.kind
        if k in ("Input", "Output"):
            return x
        if k == "Affine" or k == "Linear":
            y = x.flatten(1) @ p["w"].t()
            return y if p["b"] is None else y + p["b"]
        if k == "Scale":
            return x * p["s"]
        if k == "Threshold":
            return (x > p["thr"]).to(x.dtype)
        if k == "CubaLIF":
            i_s = self.state.get("i", torch.zeros_like(x))
            x = i_s + p["sg"] * x - p["sa"] * i_s
            self.state["i"] = x
        v = self.state.get("v", torch.zeros_like(x))
        if p["a"] is not None:  # leaky: LI, LIF, CubaLIF
            v = v - p["a"] * v + p["leak"] + p["g"] * x
        else:
            v = v + p["g"] * x
        if k == "LI":
            self.state["v"] = v
            return v
        z = (v > p["thr"]).to(x.dtype)
        v = v - z * p["thr"] if self.subtract else torch.where(z.bool(), p["reset"], v)
        self.state["v"] = v
        return z


def run_reference(graph, x: torch.Tensor, steps: int, reset: str = "nir",
                  dt: float | None = None) -> torch.Tensor:
    """The output node's values ``[steps, B, n_out]`` of ``graph`` driven by ``x`` (``[B,
    n_in]``, held for every step), by the node equations of the module docstring. ``dt``:
    the graph's own (``stochep_dt`` in its metadata) or :data:`graph.DT`."""
    if reset not in RESETS:
        raise NIRExportError(f"reset must be one of {', '.join(RESETS)}, got {reset!r}")
    if dt is None:
        dt = float((graph.metadata or {}).get("stochep_dt", DT))
    order = _order(graph)
    nir = require_nir()
    outs = [k for k in order if isinstance(graph.nodes[k], nir.Output)]
    if len(outs) != 1:
        raise NIRExportError(f"the graph needs exactly one Output node, found {len(outs)}")
    output = outs[0]
    rank = {k: i for i, k in enumerate(order)}
    nodes = {k: _Node(graph.nodes[k], dt, reset) for k in order}
    inputs = {k: [a for a, b in graph.edges if b == k] for k in order}
    x = x.flatten(1).float()
    prev: dict = {}
    out = []
    for _ in range(steps):
        cur: dict = {}
        for k in order:
            if rank[k] == 0:
                cur[k] = nodes[k](x)
                continue
            terms = [cur.get(a) if rank[a] < rank[k] else prev.get(a) for a in inputs[k]]
            terms = [t for t in terms if t is not None]
            if not terms:  # only feedback inputs, none delivered yet
                continue
            total = terms[0]
            for t in terms[1:]:
                total = total + t
            cur[k] = nodes[k](total)
        out.append(cur[output])
        prev = cur
    return torch.stack(out)


def require_snntorch():
    """snnTorch's NIR importer, or one :class:`NIRExportError` line saying how to install it."""
    try:
        from snntorch.import_nir import import_from_nir
    except ImportError as e:
        raise NIRExportError(f"running a NIR graph in snnTorch needs snntorch and nirtorch "
                             f"({e}): pip install 'stochep[nir]'") from None
    return import_from_nir


def in_flow_order(graph):
    """A copy of ``graph`` listing its nodes breadth-first from the input. nirtorch's executor
    wires nodes in the order the graph lists them and feeds a node whose inputs are all still
    unset a placeholder of shape ``[1]``; a graph read from a file lists its nodes
    alphabetically (HDF5), which put a layer's feedback before its input and failed with
    ``mat1 and mat2 shapes cannot be multiplied``."""
    nir = require_nir()
    g = copy.deepcopy(graph)
    return nir.NIRGraph(nodes={k: g.nodes[k] for k in _order(g)}, edges=list(g.edges),
                        metadata=dict(g.metadata or {}), type_check=False)


def snntorch_module(graph):
    """snnTorch's module for ``graph`` (``snntorch.import_nir.import_from_nir``, given a copy in
    flow order, :func:`in_flow_order`); the importer's own failure is re-raised as one
    :class:`NIRExportError` line that quotes it."""
    import_from_nir = require_snntorch()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the importer prints progress
            return import_from_nir(in_flow_order(graph))
    except Exception as e:  # noqa: BLE001 -- whatever the importer raises, quoted
        first = (str(e).strip().splitlines() or [""])[0]
        raise NIRExportError(f"snnTorch cannot import the graph: {type(e).__name__}: "
                             f"{first}") from None


@torch.no_grad()
def run_snntorch(graph, x: torch.Tensor, steps: int, module=None) -> torch.Tensor:
    """The output node's values ``[steps, B, n_out]`` of ``graph`` run in snnTorch (its NIR
    importer and nirtorch's graph executor), ``x`` held for every step. Neuron states start
    at zero for each call. ``module``: a :func:`snntorch_module` of the graph, to reuse."""
    module = module or snntorch_module(graph)
    for m in module.modules():  # snnTorch neurons keep their state on the module
        if hasattr(m, "reset_mem") and m is not module:
            m.reset_mem()
            for name in ("mem", "syn"):  # zeros of the next input's shape on the next call
                if hasattr(m, name):
                    setattr(m, name, torch.zeros(0))
    x = x.flatten(1).float()
    state, out = None, []
    for _ in range(steps):
        y, state = module(x, state)
        out.append(y)
    return torch.stack(out)
