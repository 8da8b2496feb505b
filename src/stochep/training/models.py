"""Build an :class:`EPNetwork` from a :class:`Config` (the ``layers`` list)."""
from __future__ import annotations

import torch

from stochep.engine.interactions import INTERACTIONS, Dense
from stochep.engine.network import EPNetwork
from stochep.engine.neurons.base import build_neuron
from stochep.registry import COSTS

from .config import Config

IMAGE_SHAPES = {784: (1, 28, 28)}  # flat datasets that conv layers may read as images


def frame_shape(input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape the network sees: one frame ``(C, H, W)`` of a 4-D ``(T, C, H, W)`` sequence,
    any other shape unchanged."""
    shape = tuple(input_shape)
    return shape[1:] if len(shape) == 4 else shape


def image_shape(input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(C, H, W)`` for conv layers: 3-D shapes pass, a flat 784 (MNIST) becomes (1, 28, 28)."""
    shape = tuple(input_shape)
    if len(shape) == 3:
        return shape
    if len(shape) == 1 and shape[0] in IMAGE_SHAPES:
        return IMAGE_SHAPES[shape[0]]
    raise ValueError(f"conv layers need an image input of shape (C, H, W) (or a flat 784, read "
                     f"as (1, 28, 28)), got input shape {shape}")


def layer_kind(index: int, spec) -> str:
    """The registered kind (``INTERACTIONS``) a ``layers`` entry names: ``dense`` for an int,
    else the one key of a dict that is a registered kind."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        return "dense"
    if isinstance(spec, dict):
        kinds = [str(k) for k in spec if k in INTERACTIONS]
        if len(kinds) == 1:
            return kinds[0]
        if not kinds and "kernel" in spec:
            raise ValueError(f"layers[{index}]: a conv layer needs 'conv' (number of output "
                             "channels)")
    raise ValueError(f"layers[{index}] must be a positive int (dense width) or a dict naming one "
                     f"layer kind ({', '.join(INTERACTIONS)}), got {spec!r}")


def build_network(cfg: Config, input_shape: tuple[int, ...], n_classes: int,
                  embedding: torch.Tensor | None = None, n_perclass: int | None = None
                  ) -> EPNetwork:
    """Network from ``cfg.layers``, one entry per hidden layer, bottom to top; each entry's
    kind is looked up in ``INTERACTIONS`` (``engine/interactions/``), whose ``from_spec`` checks
    and builds it:

    - an int ``n``: a dense layer of ``n`` neurons (eq. 3);
    - a dict ``{conv: C, kernel: 3, stride: 1, padding: 0, pool: 1, pool_stride: pool}``:
      a :class:`ConvPool` layer of ``C`` channels (eq. 13); only ``conv`` is required, ``pool: 1``
      means no pooling. The paper's MNIST 2C is
      ``[{conv: 64, kernel: 5, padding: 1, pool: 3}, {conv: 128, kernel: 5, padding: 1, pool: 3}]``;
    - a dict ``{attention: N}`` (first layer only): :class:`HopfieldAttention` from a token
      sequence to ``N`` neurons (appendix B); it looks the tokens up in ``embedding`` (the text
      dataset's word vectors; random vectors of a 1,000-word vocabulary when ``None``, for
      tools that measure without data).

    Conv layers need an image input: a 3-D ``input_shape`` ``(C, H, W)``, or a flat 784 read as
    ``(1, 28, 28)`` (the network's ``input_shape`` is then 3-D, so batches must be reshaped). A
    conv layer cannot follow a dense layer. A 4-D ``input_shape`` ``(T, C, H, W)`` is a sequence of
    frames (event data): the network sees one frame ``(C, H, W)`` (``frames.py`` runs the
    sequence). The output layer (``n_classes * n_perclass``
    neurons; ``n_perclass`` replaces ``cfg.n_perclass``, as an analysis that varies it does) is
    appended as a dense readout, flattening whatever is below. Weights are drawn
    from a generator seeded by ``cfg.seed``; global RNG state is untouched.
    """
    neuron = build_neuron(cfg)
    n_perclass = cfg.n_perclass if n_perclass is None else n_perclass
    shape = frame_shape(input_shape)
    kinds = [INTERACTIONS[layer_kind(i, spec)] for i, spec in enumerate(cfg.layers)]
    if kinds and kinds[0].needs_image:
        shape = image_shape(shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        inters = []
        for i, (kind, spec) in enumerate(zip(kinds, cfg.layers)):
            inter = kind.from_spec(i, spec, shape, cfg.init_scale, embedding)
            inters.append(inter)
            shape = inter.out_shape
        inters.append(Dense(shape, n_classes * n_perclass, init_scale=cfg.init_scale))
    return EPNetwork(inters, neuron, cfg.lam, n_classes, n_perclass,
                     COSTS[cfg.cost]())

