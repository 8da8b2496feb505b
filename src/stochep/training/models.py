"""Build an :class:`EPNetwork` from a :class:`Config` (the ``layers`` list)."""
from __future__ import annotations

import torch

from stochep.engine.interactions import ConvPool, Dense, HopfieldAttention
from stochep.engine.network import EPNetwork

from .config import Config

CONV_KEYS = {"conv": None, "kernel": 3, "stride": 1, "padding": 0, "pool": 1, "pool_stride": None}
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


def _conv_spec(i: int, spec: dict) -> dict:
    unknown = sorted(set(map(str, spec)) - set(CONV_KEYS))
    if unknown:
        raise ValueError(f"layers[{i}]: unknown conv key(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(CONV_KEYS)}")
    if "conv" not in spec:
        raise ValueError(f"layers[{i}]: a conv layer needs 'conv' (number of output channels)")
    out = {**CONV_KEYS, **spec}
    for key, v in out.items():
        low = 0 if key == "padding" else 1
        if v is None and key == "pool_stride":
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"layers[{i}].{key} must be an integer >= {low}, got {v!r}")
    return out


def _attention(i: int, spec: dict, shape, embedding, init_scale: float) -> HopfieldAttention:
    if i != 0:
        raise ValueError(f"layers[{i}]: an attention layer must be the first layer")
    if set(map(str, spec)) != {"attention"}:
        raise ValueError(f"layers[{i}]: an attention layer takes only 'attention' (its width), "
                         f"got keys {', '.join(map(str, spec))}")
    n = spec["attention"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"layers[{i}].attention must be an integer >= 1, got {n!r}")
    if len(shape) != 1:
        raise ValueError(f"layers[{i}]: attention needs a token sequence [L], got shape {shape}")
    if embedding is None:
        embedding = torch.randn(1001, 50)
        embedding[0] = 0
    return HopfieldAttention(shape[0], n, embedding, init_scale=init_scale)


def build_network(cfg: Config, input_shape: tuple[int, ...], n_classes: int,
                  embedding: torch.Tensor | None = None) -> EPNetwork:
    """Network from ``cfg.layers``, one entry per hidden layer, bottom to top.

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
    neurons) is appended as a dense readout, flattening whatever is below. Weights are drawn
    from a generator seeded by ``cfg.seed``; global RNG state is untouched.
    """
    neuron = cfg.neuron_model()
    shape = frame_shape(input_shape)
    layers = list(cfg.layers)
    if layers and isinstance(layers[0], dict) and "attention" not in layers[0]:
        shape = image_shape(shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        inters = []
        for i, spec in enumerate(layers):
            if isinstance(spec, dict) and "attention" in spec:
                inter = _attention(i, spec, shape, embedding, cfg.init_scale)
            elif isinstance(spec, dict):
                if len(shape) != 3:
                    raise ValueError(f"layers[{i}]: a conv layer needs an image (C, H, W) "
                                     f"below it, got shape {shape} (conv cannot follow dense)")
                s = _conv_spec(i, spec)
                try:
                    inter = ConvPool(shape, s["conv"], s["kernel"], s["stride"], s["padding"],
                                     s["pool"], s["pool_stride"], init_scale=cfg.init_scale)
                except ValueError as e:
                    raise ValueError(f"layers[{i}]: {e}") from None
            elif isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
                raise ValueError(f"layers[{i}] must be a positive int (dense width) or a conv "
                                 f"dict, got {spec!r}")
            else:
                inter = Dense(shape, spec, init_scale=cfg.init_scale)
            inters.append(inter)
            shape = inter.out_shape
        inters.append(Dense(shape, n_classes * cfg.n_perclass, init_scale=cfg.init_scale))
    return EPNetwork(inters, neuron, cfg.lam, n_classes, cfg.n_perclass, cfg.output_cost())

