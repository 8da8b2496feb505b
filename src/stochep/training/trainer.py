"""Training loop: EP updates, evaluation, run directory, checkpoints and exact resume.

Three explicit random streams, all checkpointed: spikes (:class:`SpikeRNG`), data order and beta
signs (``torch.Generator``). Evaluation draws spikes from its own freshly seeded stream, so it
never perturbs training. A checkpoint is written atomically after every epoch; a killed run loses
at most the epoch in progress and ``resume=True`` continues bit-exactly on the CPU.

Model selection uses a validation set held out of the training data (``val_fraction``, seeded
split, see :mod:`stochep.data.split`): ``checkpoint_best.pt`` is the epoch of highest validation
accuracy, or the last epoch when ``val_fraction`` is 0. The test set never chooses anything.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from stochep.data import Dataset
from stochep.data.augment import augment_batch
from stochep.data.base import as_batch, as_batch_labels, as_floats, as_labels
from stochep.data.split import split_validation
from stochep.engine.calibrate import calibrate_rates
from stochep.engine.faults import DeviceFaults
from stochep.engine.network import Inference
from stochep.engine.record import Recording, record
from stochep.engine.rng import RANK_SEED_STRIDE, SpikeRNG, Streams
from stochep.rules import TrainingDiverged

from .activity import activity_tensor, activity_warnings, as_rows
from .build import build_dynamics, build_training_rules
from .callbacks import Callback, Checkpoints, Progress
from .checkpoint import CKPT_FORMAT, CheckpointError, load_checkpoint
from .config import Config, check_device
from .distributed import DataParallel
from .models import build_network, image_shape
from .optim import make_optimizer, make_scheduler, retarget_schedule
from .persistent import FreeStateStore
from .placement import resident
from .quantize import WeightQuantizer, state_grid
from .rundir import RunExists, RunLock
from .weight_average import WeightAverage

EVAL_SEED_OFFSET = 7919
VAL_SPLIT_SEED_OFFSET = 104729  # the validation split's own stream: seed + this


@dataclass
class EpochStats:
    loss: float
    acc: float
    rates: list[float]
    activity: dict  # per layer: free-phase at_low / at_high fractions, weight-update ratios and
    # the nudged phase's firing rate (zeros for BPTT, which has no nudged phase)


class LayerMeter:
    """Sample-weighted means of :func:`layer_activity` and of the weight-update ratios."""

    def __init__(self, n_layers: int):
        self.sums = {k: [0.0] * n_layers
                     for k in ("rate", "at_low", "at_high", "update", "nudge_rate")}
        self.n = 0

    def add(self, activity: list[dict], updates: list[float], n: int,
            nudged: list[dict] | None = None) -> None:
        """One batch: free-phase activity, update ratios, nudged-phase activity (EP only)."""
        for i, a in enumerate(activity):
            for k in ("rate", "at_low", "at_high"):
                self.sums[k][i] += a[k] * n
        for i, a in enumerate(nudged or []):
            self.sums["nudge_rate"][i] += a["rate"] * n
        for i, u in enumerate(updates):
            self.sums["update"][i] += u * n
        self.n += n

    def mean(self, key: str) -> list[float]:
        return [v / max(self.n, 1) for v in self.sums[key]]

    def summary(self) -> dict:
        return {"at_low": self.mean("at_low"), "at_high": self.mean("at_high"),
                "update_ratio": self.mean("update"), "nudge_firing_rate": self.mean("nudge_rate")}


def _step_ratios(net, before: list[torch.Tensor]) -> torch.Tensor:
    """``|W_new - W_old| / |W_old|`` of each weight tensor (biases skipped), one per layer, as
    one tensor on the weights' device."""
    return torch.stack([(p.detach() - b).norm() / b.norm().clamp_min(1e-12)
                        for (name, p), b in zip(net.named_parameters(), before)
                        if name.endswith("weight")])


class Trainer:
    """One run: the network, rule, optimizer and streams a :class:`Config` describes.

    ``calibrate=False`` skips the data-dependent initialisation (used when a checkpoint's
    weights replace it anyway). :meth:`from_checkpoint` and :meth:`from_run` rebuild a run
    from its checkpoint; they are the only way the CLI resumes or evaluates.
    """

    def __init__(self, cfg: Config, data: Dataset, out_dir: str | None = None,
                 progress: bool = True, calibrate: bool = True,
                 run_lock: RunLock | None = None, overwrite: bool = False):
        # a copy: the trainer records the data it got (a dataset of your own, a subset, an
        # absolute data_dir) without changing the caller's config
        self.cfg = cfg = Config.from_dict(cfg.validate().resolved().to_dict())
        check_device(cfg.device)
        if cfg.deterministic:
            use_deterministic()
        data = self._adopt(data)
        # self.data holds only the training part; the held-out part is self.val (None if none).
        # No training samples: a run rebuilt only to score new inputs (from_checkpoint)
        self.eval_only = len(data.y_train) == 0
        self.other_data: str | None = None  # why fit() refuses a checkpoint of other data
        self.data, self.val = (data, None) if self.eval_only else split_validation(
            data, cfg.val_fraction, cfg.seed + VAL_SPLIT_SEED_OFFSET)
        if cfg.augment:
            try:
                image_shape(data.input_shape)
            except ValueError:
                raise ValueError(f"augment=true needs image data; dataset {cfg.dataset!r} has "
                                 f"input shape {tuple(data.input_shape)}") from None
        self.out_dir = out_dir
        # a run directory that holds a run is trained over only by the run itself (resumed)
        # or with overwrite=True; fit() checks under the directory's lock (_check_run_dir)
        self.overwrite = overwrite
        # world size 1 unless launched data-parallel (distributed.py)
        self.dp = DataParallel(cfg.device)
        # one writer per run directory (rundir.py): held while fit() trains, or from earlier
        # by a caller that took it first and passes it in (the CLI, before it reads the
        # checkpoint it resumes: a run that ends in between cannot be trained over)
        self.run_lock = (run_lock or RunLock(out_dir)) if out_dir and self.dp.main else None
        self.progress = progress and self.dp.main
        self.callbacks: list[Callback] = []  # while fit() runs (callbacks.py)
        self.device = self.dp.device  # cfg.device; data-parallel on GPUs: this rank's own
        self.net = build_network(cfg, data.input_shape, data.n_classes,
                                 data.embedding).to(self.device)
        self.frames = len(data.input_shape) == 4  # a sequence of frames (event data)
        if calibrate and cfg.calibrate_rate > 0:  # data-dependent init (calibrate.py), on training images only
            calibrate_rates(self.net, self.network_inputs(cfg.calibrate_batch),
                            cfg.calibrate_rate, steps=cfg.T_free, iters=cfg.calibrate_iters)
        self.dp.broadcast_params(self.net)  # rank 0's (calibrated) initial weights everywhere
        # the weights evaluation uses: their moving average (ema_decay > 0), or the raw ones
        self.ema = WeightAverage(self.net, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.streams = Streams(cfg.seed, self.device, self.dp.rank)
        # the device (docs/hardware.md): the weights' N-bit grids, fixed here at calibration
        # (quantize.py), the states' grid, and the chip's faults (engine/faults.py)
        self.quant = WeightQuantizer.from_config(cfg, self.net, self.streams.round)
        self.net.state_grid = state_grid(cfg)
        self.net.faults = DeviceFaults.build(cfg.faults, self.net)
        self.rule, self.persist_rule = build_training_rules(cfg, self.streams, self.frames,
                                                            self.dp.world_size)
        # the training set on the GPU when it fits (placement.py): batches gathered there
        (self._x_train, self._y_train), self.data_on_device = resident(
            [self.data.x_train, self.data.y_train], self.device)
        self.store = None  # persistent free phases (persistent.py)
        if self.persist_rule is not None:
            self.store = FreeStateStore(len(self.data.y_train), self.net.layer_shapes,
                                        self.device)
        # evaluation's free phases run like the rule's (one object, so one torch.compile)
        self.dynamics = getattr(self.rule, "dynamics", None) or build_dynamics(cfg)
        self.opt = make_optimizer(cfg, self.net)
        if self.quant is not None:
            self.quant.attach(self.opt)  # every step lands on the grid
        self.sched = make_scheduler(cfg, self.opt)
        self.epoch = 0
        self.best_epoch = 0  # chosen by validation accuracy (the last epoch without validation)
        self.best_val_acc: float | None = None
        self.test_acc_at_best_val: float | None = None
        self.train_time = 0.0
        self.history: list[dict] = []
        self.warned: set[str] = set()  # activity warnings already printed (once each)
        # net(x) scores as this run evaluates (Trainer.scores), with no trainer behind it
        self.net.inference = Inference(
            cfg.T_free, cfg.readout_average, self._eval_seed(), self.dynamics, self.rule,
            data_shape=tuple(data.input_shape), frames=self.frames,
            token_ids=data.embedding is not None, weights=self._weights_view())

    def _adopt(self, data: Dataset) -> Dataset:
        """The data this run trains on, recorded in its config: ``train_subset``, float32
        inputs and int64 labels, an absolute ``data_dir``, and for a dataset of your own
        (``Dataset.from_tensors``) its name and fingerprint."""
        cfg = self.cfg
        if cfg.data_dir:
            cfg.data_dir = os.path.abspath(os.path.expanduser(cfg.data_dir))
        if not isinstance(data, Dataset):
            raise TypeError(f"data must be a stochep Dataset, got {type(data).__name__}; build "
                            "one with Dataset.from_tensors(x_train, y_train, x_test, y_test)")
        data = dataclasses.replace(
            data, x_train=as_floats(data.x_train, "x_train"),
            x_test=as_floats(data.x_test, "x_test"),
            y_train=as_labels(data.y_train, "y_train"), y_test=as_labels(data.y_test, "y_test"))
        if cfg.train_subset:
            data.x_train = data.x_train[:cfg.train_subset]
            data.y_train = data.y_train[:cfg.train_subset]
        self.data_fingerprint = data.fingerprint
        if data.fingerprint is not None:
            cfg.dataset, cfg.data_options, cfg.data_dir = data.name, {}, None
        return data

    @classmethod
    def from_checkpoint(cls, path: str, *, data: Dataset | None = None,
                        data_dir: str | None = None, epochs: int | None = None,
                        overrides=(), out_dir: str | None = None,
                        progress: bool = False, run_lock: RunLock | None = None,
                        score_only: bool = False) -> Trainer:
        """The run saved in checkpoint ``path``, its config changed by ``data_dir``, ``epochs``
        and ``--set`` style ``overrides``; it continues bit-exactly. ``data``: the dataset to
        use instead of the config's (required for a run on a dataset of your own, which must be
        the same tensors). ``epochs`` below the epochs already trained is a ValueError.
        ``run_lock``: the run directory's lock, already held by the caller. ``score_only``:
        rebuild the network without reading any dataset (it scores inputs of its shape)."""
        ck = load_checkpoint(path)
        cfg = Config.from_dict(ck["config"])
        if epochs is not None and epochs < ck["epoch"]:
            raise ValueError(f"{path} has already trained {ck['epoch']} epochs; --epochs must be "
                             f"at least {ck['epoch']} to continue it, got {epochs}")
        for key, val in (("epochs", epochs), ("data_dir", data_dir)):
            if val is not None:
                cfg.set(key, val)
        cfg.apply_overrides(list(overrides)).validate()
        check_device(cfg.resolved().device)
        fingerprint = ck.get("data")
        if data is None:
            # a run on your own tensors (or score_only) rebuilt without its data: it scores any
            # inputs of its shape (evaluate, predict, scores); training on needs the data
            data = cfg.load_data() if fingerprint is None and not score_only else \
                Dataset.shape_only((fingerprint or {}).get("name", cfg.dataset),
                                   ck["input_shape"], ck["n_classes"])
        tr = cls(cfg, data, out_dir, progress, calibrate=False, run_lock=run_lock)
        tr.load_state_dict(ck)
        # training on continues the run it was read from: its last checkpoint in its own
        # directory. A best checkpoint trained on would rewind the run: that needs overwrite
        tr.overwrite = out_dir is not None and os.path.basename(path) == "checkpoint_last.pt" \
            and os.path.abspath(os.path.dirname(path)) == os.path.abspath(out_dir)
        return tr

    @classmethod
    def from_run(cls, out_dir: str, which: str = "last", **kw) -> Trainer:
        """The run in directory ``out_dir`` from its ``checkpoint_last.pt`` (to resume it) or
        ``which="best"``: its ``checkpoint_best.pt`` (the epoch validation chose)."""
        if which not in ("last", "best"):
            raise ValueError(f"which must be 'last' or 'best', got {which!r}")
        return cls.from_checkpoint(os.path.join(out_dir, f"checkpoint_{which}.pt"),
                                   out_dir=out_dir, **kw)

    # ---- one epoch --------------------------------------------------------------------
    def train_epoch(self) -> EpochStats:
        """One pass over the training set in a seeded random order, :meth:`train_step` per
        batch; the scheduler steps once at the end."""
        cfg, net = self.cfg, self.net
        x_all, y_all = self._x_train, self._y_train
        order = torch.randperm(len(y_all), generator=self.streams.data)
        n_batches = math.ceil(len(order) / cfg.batch_size)
        tot_loss = tot_correct = 0.0
        activity = LayerMeter(len(net.layer_shapes))
        seen = 0
        for b in range(n_batches):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            m = self.train_step(x_all[idx], y_all[idx], index=idx, batch=b)
            if m["n"] == 0:
                continue
            seen += m["n"]
            tot_loss += m["loss_sum"]
            tot_correct += m["correct"]
            activity.add(m["layers"], m["update_ratio"], m["n"], m["nudged_layers"])
            for cb in self.callbacks:
                cb.on_batch_end(self, b, m)
        self.sched.step()
        seen, tot_loss, tot_correct = self.dp.sum(seen, tot_loss, tot_correct)
        # layer activity is rank 0's shard's (a sample of the batch), not summed over ranks
        return EpochStats(tot_loss / seen, tot_correct / seen, activity.mean("rate"),
                          activity.summary())

    def train_step(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None,
                   batch: int = 0) -> dict:
        """One optimizer step on a batch ``(x, y)`` of training samples (shaped as the
        dataset's, on any device): augmentation if configured, this rank's shard, the rule's
        gradients, the finiteness check, the step and the weight average. ``index``: the
        samples' positions in the training set (persistent free states need them); ``batch``
        names the batch in a divergence message.

        Returns the batch's metrics: ``loss`` (mean cost at the free state), ``correct`` and
        ``acc``, ``n`` (this rank's samples), ``rates`` and per layer ``layers`` (free-phase
        activity), ``nudged_layers`` and ``update_ratio`` (|update| / |weight|)."""
        cfg, net = self.cfg, self.net
        x, y = self.inputs(x), y.to(self.device)
        if cfg.augment:  # on the image (a flat 784 is read as 1x28x28), then back
            img = x.reshape(len(x), *image_shape(self.data.input_shape))
            x = augment_batch(img, self.streams.data, cfg.augment_pad,
                              cfg.augment_flip).reshape(x.shape)
        x, y = self.dp.shard(x), self.dp.shard(y)  # this rank's part of the global batch
        n = len(y)
        if n == 0:  # a last batch smaller than the world: this rank adds nothing
            for p in net.parameters():
                p.grad = torch.zeros_like(p)
            self.dp.average_grads(net.parameters(), 0)
            self.optimizer_step()
            return {"n": 0, "loss": 0.0, "loss_sum": 0.0, "correct": 0, "acc": 0.0, "rates": [],
                    "layers": [], "nudged_layers": None, "update_ratio": []}
        # a rule that steps the optimizer inside the batch (frames stepped per frame, continual
        # EP per nudged step) gets it; the trainer's step below is the last one
        kw = {"optimizer": self.opt} if self.frames or getattr(
            self.rule, "steps_optimizer", False) else {}
        with self._device_weights():  # the varied weights of a faulty device, if any
            if self.frames:
                res = self.rule.gradients(net, x, y, **kw)
            elif self.store is not None:
                if index is None:
                    raise ValueError("persist_free needs index= (the samples' positions in "
                                     "the training set) in train_step")
                init = self.store.get(index)
                rule = self.rule if init is None else self.persist_rule
                res = rule.gradients(net, x, y, init=init, **kw)
                self.store.put(index, res.free)
            else:
                res = self.rule.gradients(net, x, y, **kw)
        free, loss, nudged = res.free, res.loss, res.nudged
        self.dp.average_grads(net.parameters(), n)
        self.check_finite(free, batch)
        before = [p.detach().clone() for p in net.parameters()]
        self.optimizer_step()
        pred = net.predict(free[-1]) if res.scores is None else res.scores.argmax(1)
        # every metric in one device-to-host copy (one sync per batch on a GPU)
        acts = [activity_tensor(net, free)] + ([] if nudged is None
                                               else [activity_tensor(net, nudged)])
        ratios = _step_ratios(net, before)
        head = torch.stack([loss.detach().sum().double(), (pred == y).sum().double()])
        flat = torch.cat([head, ratios.double()] + [a.double().flatten() for a in acts]).tolist()
        loss_sum, correct = flat[0], int(flat[1])
        k = 2 + len(ratios)
        n_layers = len(free)
        layers = as_rows([flat[k + 3 * i:k + 3 * i + 3] for i in range(n_layers)])
        nudged_layers = None if nudged is None else as_rows(
            [flat[k + 3 * (n_layers + i):k + 3 * (n_layers + i) + 3] for i in range(n_layers)])
        return {"n": n, "loss": loss_sum / n, "loss_sum": loss_sum, "correct": correct,
                "acc": correct / n, "rates": [a["rate"] for a in layers], "layers": layers,
                "nudged_layers": nudged_layers, "update_ratio": flat[2:k]}

    def optimizer_step(self) -> None:
        """One optimizer step, folded into the weight average if there is one (with
        ``frame_update='frame'`` the rule steps per frame and the average once per batch)."""
        self.opt.step()
        if self.ema is not None:
            self.ema.update(self.net)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Reshape a batch to the network's input shape (784 -> 1x28x28 for conv; frame
        sequences ``[B, T, *frame]``), on device."""
        lead = (len(x), x.shape[1]) if self.frames else (len(x),)
        return x.reshape(*lead, *self.net.input_shape).to(self.device)

    def network_inputs(self, n: int) -> torch.Tensor:
        """The first ``n`` training inputs as the network sees them (calibration, diagnose):
        for frame sequences frame ``i mod T`` of sample ``i``, spanning the whole recording."""
        x = self.inputs(self.data.x_train[:n])
        if not self.frames:
            return x
        idx = torch.arange(len(x))
        return x[idx, idx % x.shape[1]]

    def check_finite(self, states, batch: int = 0) -> None:
        """Raise :class:`TrainingDiverged` if ``states``, a weight or a gradient holds NaN or
        inf (``batch`` numbers the batch in the message). One host sync; the culprit is
        looked for only when something is wrong."""
        params = list(self.net.named_parameters())
        flags = [torch.isfinite(s).all() for s in states] + \
            [torch.isfinite(p).all() & torch.isfinite(p.grad).all() for _, p in params]
        if bool(torch.stack(flags).all()):
            return
        where = f"epoch {self.epoch + 1}, batch {batch + 1}"
        if not all(torch.isfinite(s).all() for s in states):
            raise TrainingDiverged(f"NaN/inf in neuron states at {where}")
        for name, p in params:
            if not torch.isfinite(p).all() or not torch.isfinite(p.grad).all():
                raise TrainingDiverged(f"NaN/inf in {name} or its gradient at {where}; "
                                       "lower lr or beta")

    @torch.no_grad()
    def scores(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Class scores ``[N, n_classes]`` of inputs ``x`` as evaluation computes them (the
        rule's free phase with the config's steps, readout average and weight average; spikes
        from the evaluation stream, seeded afresh each call). ``net(x)`` scores the same way
        with the settings the network carries (``EPNetwork.inference``)."""
        with self._eval_weights():
            return torch.cat(list(self._scores(self._check_inputs(x), batch_size)))

    def _scores(self, x: torch.Tensor, batch_size: int):
        """The rule's class scores of ``x``, batch by batch (on the CPU), with spikes from this
        rank's evaluation stream, seeded afresh."""
        for s in self.net.score_batches(x, batch_size, prepare=self.inputs):
            yield s.cpu()

    @torch.no_grad()
    def record(self, x: torch.Tensor, y: torch.Tensor | None = None, seed: int | None = None,
               nudge: bool = False) -> Recording:
        """Per-layer states, rates and spikes at every step of a free phase of ``T_free`` steps
        on inputs ``x`` (checked as :meth:`evaluate` checks them), with this run's dynamics and
        evaluation weights; ``nudge=True`` adds its nudged phase (``T_nudge``, ``+beta``)
        toward ``y``. ``seed=None``: mean field; an integer: seeded spikes
        (:func:`stochep.engine.record.record`)."""
        x = self.inputs(self._check_inputs(x))
        y = self._check_labels(y, len(x)) if nudge else None
        beta = getattr(self.rule, "beta", self.cfg.beta)
        with self._eval_weights():
            return record(self.net, x, self.cfg.T_free, seed=seed, y=y, beta=beta,
                          nudge_steps=self.cfg.T_nudge if nudge else 0, dynamics=self.dynamics)

    def _eval_seed(self) -> int:
        """The evaluation spike stream's seed, one per rank."""
        return self.cfg.seed + EVAL_SEED_OFFSET + RANK_SEED_STRIDE * self.dp.rank

    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Predicted classes of inputs ``x``: the largest of :meth:`scores`."""
        return self.scores(x, batch_size).argmax(1)

    def _eval_weights(self):
        """The weights evaluation uses: their moving average (``ema_decay``), or the raw ones;
        on a device with weight variation (``faults.variation``), as the device varies them."""
        view = self._weights_view()
        return view.applied(self.net) if view is not None else contextlib.nullcontext()

    def _weights_view(self) -> EvalWeights | None:
        faults = self.net.faults
        if self.ema is None and (faults is None or not faults.varies_weights):
            return None
        return EvalWeights(self.ema, faults)

    def _device_weights(self):
        """The weights the device trains with: the programmed ones, or their varied values
        (``faults.variation``) inside the block; updates are written to the programmed ones."""
        faults = self.net.faults
        if faults is None or not faults.varies_weights:
            return contextlib.nullcontext()
        return faults.varied(self.net)

    def set_faults(self, spec: dict) -> DeviceFaults | None:
        """Run on a device with the faults ``spec`` describes (a ``faults:`` mapping, ``{}``
        for none; engine/faults.py) from now on, in training and evaluation; returns them."""
        self.net.faults = DeviceFaults.build(spec, self.net)
        self.cfg.faults = dict(spec)
        self.net.inference.weights = self._weights_view()
        return self.net.faults

    def _check_inputs(self, x) -> torch.Tensor:
        """``x`` checked as training data is (``data.base.as_batch``), as float32."""
        return as_batch(x, self.data.input_shape,
                        token_ids=hasattr(self.net.interactions[0], "embedding"))

    def _check_labels(self, y, n: int) -> torch.Tensor:
        return as_batch_labels(y, n, self.data.n_classes)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
        """Accuracy on ``(x, y)`` of the rule's prediction (the free phase with stochastic spikes,
        as in training, unless the rule says otherwise: ``LearningRule.infer``), read from the
        output state averaged over its last ``readout_average`` steps. With ``ema_decay`` the
        network's weights are their moving average for the evaluation."""
        x = self._check_inputs(x)
        y = self._check_labels(y, len(x))
        with self._eval_weights():
            return self._evaluate(x, y, batch_size)

    @torch.no_grad()
    def _evaluate_own(self, x: torch.Tensor, y: torch.Tensor, split: str = "val",
                      batch_size: int = 1000) -> float:
        """:meth:`evaluate` on the run's own (already checked) validation or test split; the
        callbacks see each scored batch (``on_eval_batch``: a bar in a terminal)."""
        with self._eval_weights():
            return self._evaluate(x, y, batch_size, split)

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                  split: str | None = None) -> float:
        total = len(y)
        x, y = self.dp.shard(x), self.dp.shard(y)  # data-parallel: each rank its share
        correct, n_batches = 0, math.ceil(len(y) / batch_size)
        for i, s in enumerate(self._scores(x, batch_size)):
            correct += (s.argmax(1) == y[i * batch_size:(i + 1) * batch_size]).sum().item()
            for cb in self.callbacks if split else ():
                cb.on_eval_batch(self, split, i + 1, n_batches)
        return self.dp.sum(correct)[0] / total

    # ---- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The run's state; data-parallel, a collective call (every rank's spike stream)."""
        extra = {}
        if self.dp.world_size > 1:
            extra = {"world_size": self.dp.world_size,
                     "spike_rng_ranks": self.dp.gather(self.streams.spike.state_dict())}
        return {"format": CKPT_FORMAT, "config": self.cfg.to_dict(), "epoch": self.epoch,
                "model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), **self.streams.state_dict(), **extra,
                "ema": None if self.ema is None else self.ema.state_dict(),
                "best_epoch": self.best_epoch, "best_val_acc": self.best_val_acc,
                "test_acc_at_best_val": self.test_acc_at_best_val,
                "train_time": self.train_time, "history": self.history,
                "input_shape": list(self.data.input_shape), "n_classes": self.data.n_classes,
                "data": self.data_fingerprint,
                "free_states": None if self.store is None else self.store.state_dict(),
                "quantize": None if self.quant is None else self.quant.state_dict()}

    def load_state_dict(self, ck: dict) -> None:
        """Restore a checkpoint (as :func:`load_checkpoint` returns it); a checkpoint that does
        not fit this network raises :class:`CheckpointError` in one line."""
        saved = (ck.get("data") or {}).get("sha256")
        if not self.eval_only and saved != (self.data_fingerprint or {}).get("sha256"):
            # scoring other data is fine; training on would continue the run on other data
            theirs = ck.get("data") or {"name": ck["config"].get("dataset")}
            self.other_data = (f"checkpoint was trained on other data (dataset "
                               f"{theirs['name']!r}); pass the same tensors to resume it")
        try:
            self.net.load_state_dict(ck["model"])
            self.opt.load_state_dict(ck["optimizer"])
            self.sched.load_state_dict(ck["scheduler"])
            self.streams.load_state_dict(ck)
            if self.store is not None and ck.get("free_states"):
                self.store.load_state_dict(ck["free_states"])
            if self.ema is not None:  # no average saved (ema_decay set at resume): start one
                self.ema = WeightAverage(self.net, self.cfg.ema_decay)
                if ck.get("ema"):
                    self.ema.load_state_dict(ck["ema"])
            self.net.inference.weights = self._weights_view()
            if self.quant is not None:  # a float checkpoint trained on at N bits: its grid
                if ck.get("quantize"):  # is fixed now, from its weights
                    self.quant.load_state_dict(ck["quantize"])
                else:
                    self.quant.calibrate()
            ranks = ck.get("spike_rng_ranks")
            if self.dp.world_size > 1 and ranks and len(ranks) == self.dp.world_size:
                self.streams.spike.load_state_dict(ranks[self.dp.rank])
            elif self.dp.rank > 0:  # saved by another world size: a fresh stream for this rank
                self.streams.spike = SpikeRNG(
                    self.cfg.seed + RANK_SEED_STRIDE * self.dp.rank, self.device)
        except (RuntimeError, KeyError, TypeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"checkpoint does not fit the network its config builds "
                                  f"({first})") from None
        self.epoch, self.best_epoch = ck["epoch"], ck["best_epoch"]
        self.best_val_acc, self.test_acc_at_best_val = ck["best_val_acc"], \
            ck["test_acc_at_best_val"]
        self.train_time, self.history = ck["train_time"], list(ck["history"])
        retarget_schedule(self.sched, self.opt, self.cfg.epochs)

    def path(self, name: str) -> str:
        """A file of the run directory."""
        return os.path.join(self.out_dir, name)

    def resume(self) -> None:
        """Continue the run saved in this trainer's run directory (``checkpoint_last.pt``)."""
        self.load_state_dict(load_checkpoint(self.path("checkpoint_last.pt")))
        self.overwrite = True  # it is this run's own directory now

    # ---- the run ------------------------------------------------------------------------
    def fit(self, stop_after: int | None = None, callbacks: list[Callback] = ()) -> dict:
        """Train until ``cfg.epochs`` (or until epoch ``stop_after``); returns the summary.
        ``callbacks`` (:mod:`.callbacks`) run after the trainer's own (checkpoints and metrics
        with a run directory, progress). With a run directory, the run holds its lock while
        it trains (:mod:`.rundir`): a second process that opens it stops with one line naming
        this one, and a directory that holds another run is refused unless ``overwrite``."""
        if self.other_data:
            raise CheckpointError(self.other_data)
        if self.eval_only:
            fp = self.cfg.dataset
            raise ValueError(f"this run was trained on your own dataset {fp!r} and was rebuilt "
                             "without it, to score inputs; to train on, pass the same tensors: "
                             "Trainer.from_run(out_dir, data=Dataset.from_tensors(...))")
        self.callbacks = self.default_callbacks() + list(callbacks)
        try:
            if self.run_lock is not None:
                with self.run_lock:
                    self._check_run_dir()
                    return self._fit(stop_after)
            if self.out_dir:  # the other ranks of a data-parallel run refuse alike
                self._check_run_dir()
            return self._fit(stop_after)
        finally:
            self.callbacks = []

    def default_callbacks(self) -> list[Callback]:
        """The run's own jobs: :class:`Checkpoints` with a run directory, :class:`Progress`
        unless ``progress=False`` (rank 0 only)."""
        return ([Checkpoints()] if self.out_dir else []) + \
            ([Progress()] if self.progress else [])

    def _check_run_dir(self) -> None:
        """Refuse to train over a run this trainer did not resume (as the CLI refuses)."""
        if not self.overwrite and os.path.exists(self.path("checkpoint_last.pt")):
            raise RunExists(f"{self.out_dir} already holds a run; continue it with "
                            "Trainer.from_run(out_dir) (CLI: --resume), choose another out_dir, "
                            "or pass overwrite=True to replace it")

    def _fit(self, stop_after: int | None) -> dict:
        cfg = self.cfg
        last = cfg.epochs if stop_after is None else min(stop_after, cfg.epochs)
        for cb in self.callbacks:
            cb.on_fit_start(self)
        while self.epoch < last:
            for cb in self.callbacks:
                cb.on_epoch_start(self)
            t0 = time.perf_counter()
            stats = self.train_epoch()
            self.check_weights(f"after the last update of epoch {self.epoch + 1}")
            dt = time.perf_counter() - t0
            self.train_time += dt
            val_acc = self._evaluate_own(*self._eval_part(*self.val)) \
                if self.val is not None else None
            test_acc = self._evaluate_own(*self._eval_part(self.data.x_test, self.data.y_test),
                                          "test") if self._scores_test(val_acc) else None
            self.epoch += 1
            row = {"epoch": self.epoch, "train_loss": stats.loss, "train_acc": stats.acc,
                   "val_acc": val_acc, "test_acc": test_acc, "time_s": dt,
                   "firing_rate": stats.rates, **stats.activity,
                   "lr": self.opt.param_groups[0]["lr"], **self.rule.epoch_metrics(self.net)}
            self.history.append(row)
            improved = self._select(val_acc, test_acc)
            if self.dp.main:
                self._warn_activity(stats)
            for cb in self.callbacks:
                cb.on_epoch_end(self, row, improved)
        summary = self.summary()
        for cb in self.callbacks:
            cb.on_fit_end(self, summary)
        return summary

    def _eval_part(self, x, y):
        """The first ``eval_subset`` samples of a split (all of it when 0)."""
        n = self.cfg.eval_subset
        return (x[:n], y[:n]) if n else (x, y)

    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.data.y_train) / self.cfg.batch_size)

    def steps_done(self) -> int:
        """Optimizer steps of the finished epochs (a global step for loggers)."""
        return self.epoch * self.batches_per_epoch()

    def _warn_activity(self, stats: EpochStats) -> None:
        """Print each silent/saturated-layer warning once per run, in one line (stderr)."""
        acts = [{"rate": r, "at_high": h} for r, h in zip(stats.rates, stats.activity["at_high"])]
        for msg in activity_warnings(acts):
            key = msg.split(" (")[0]
            if key not in self.warned:
                self.warned.add(key)
                tqdm.write(f"stochep: warning: epoch {self.epoch}: {msg}", file=sys.stderr)

    def _scores_test(self, val_acc: float | None) -> bool:
        """Whether the epoch just trained scores the test set: always with
        ``eval_test='every'``; with ``'best'`` only at the last epoch and when the validation
        accuracy is a new best, the two epochs the summary reports."""
        return (self.cfg.eval_test == "every" or self.epoch + 1 == self.cfg.epochs
                or val_acc is None or self.best_val_acc is None or val_acc > self.best_val_acc)

    def _select(self, val_acc: float | None, test_acc: float) -> bool:
        """Make this epoch the best if its validation accuracy beats every earlier one; without
        a validation set every epoch does, so the best is the last. Test accuracy is only
        recorded, never compared."""
        if val_acc is not None and self.best_val_acc is not None \
                and val_acc <= self.best_val_acc:
            return False
        self.best_epoch, self.best_val_acc = self.epoch, val_acc
        self.test_acc_at_best_val = test_acc
        return True

    def check_weights(self, when: str) -> None:
        """Raise :class:`TrainingDiverged` if a weight holds NaN or inf."""
        for name, p in self.net.named_parameters():
            if not torch.isfinite(p).all():
                raise TrainingDiverged(f"NaN/inf in {name} {when}; the checkpoints of the last "
                                       "finished epoch are kept; lower lr or beta")


    def summary(self) -> dict:
        last = self.history[-1] if self.history else {}
        return {"test_accuracy": last.get("test_acc"), "best_val_accuracy": self.best_val_acc,
                "test_accuracy_at_best_val": self.test_acc_at_best_val,
                "best_epoch": self.best_epoch, "val_fraction": self.cfg.val_fraction,
                "epochs": self.epoch, "train_time_s": self.train_time,
                "world_size": self.dp.world_size,
                "preset": self.cfg.preset, "dataset": self.cfg.dataset, "seed": self.cfg.seed}


class EvalWeights:
    """The weights a run scores with (``EPNetwork.inference.weights``): the moving average of
    the weights if there is one, then the device's weight variation if it has any."""

    def __init__(self, ema: WeightAverage | None, faults: DeviceFaults | None):
        self.ema, self.faults = ema, faults

    @contextlib.contextmanager
    def applied(self, net):
        with contextlib.ExitStack() as stack:
            if self.ema is not None:
                stack.enter_context(self.ema.applied(net))
            if self.faults is not None and self.faults.varies_weights:
                stack.enter_context(self.faults.varied(net))
            yield net


def use_deterministic() -> None:
    """``deterministic=true``: the same seed gives the same run on a GPU (docs/gpu.md). Sets, for
    the whole process, ``torch.use_deterministic_algorithms`` (an op with no deterministic CUDA
    kernel warns), cuDNN's deterministic algorithms without autotuning, and the cuBLAS workspace
    that makes its matrix products reproducible (``CUBLAS_WORKSPACE_CONFIG``, before its first
    use). On the CPU, where every run is already exact, it changes no result.

    torch sizes the cuBLAS workspace once, when the process first uses cuBLAS: a Python user who
    ran CUDA work before building the Trainer gets a one-line warning to set
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` before that (the ``stochep`` command builds its Trainer
    before any CUDA work)."""
    if "CUBLAS_WORKSPACE_CONFIG" not in os.environ and torch.cuda.is_available() \
            and torch.cuda.is_initialized():
        warnings.warn("deterministic=true: CUDA started before CUBLAS_WORKSPACE_CONFIG was set, so "
                      "this process's cuBLAS products may not be reproducible; set "
                      "CUBLAS_WORKSPACE_CONFIG=:4096:8 before using CUDA (docs/gpu.md)",
                      stacklevel=3)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
