"""What ``Trainer.fit`` does around training, as callbacks (Lightning's loop with callbacks).

``fit`` calls, on every callback in order::

    on_fit_start(trainer)
    on_epoch_start(trainer)                    # each epoch
    on_batch_end(trainer, batch, metrics)      # each batch: Trainer.train_step's metrics
    on_eval_batch(trainer, split, done, total) # each scored batch of "val" and "test"
    on_epoch_end(trainer, row, improved)       # row: the epoch's line of metrics.jsonl
    on_fit_end(trainer, summary)

The run's own jobs are callbacks the Trainer adds (:meth:`Trainer.default_callbacks`):
:class:`Checkpoints` (config.yaml, checkpoint_last/best.pt, metrics.jsonl, summary.json) with a
run directory, :class:`Progress` (the bar in a terminal, one line per epoch) unless
``progress=False``. :class:`TensorBoard` is opt-in: ``fit(callbacks=[TensorBoard(dir)])`` or
``stochep train --log tensorboard``. Write your own by subclassing :class:`Callback`.
"""
from __future__ import annotations

import json
import shutil
import sys
import time

import yaml
from tqdm.auto import tqdm

from .build import in_force
from .checkpoint import save_atomic, write_atomic_text
from .config import to_sections


class Callback:
    """Override any hook; each does nothing by default."""

    def on_fit_start(self, trainer) -> None: ...

    def on_epoch_start(self, trainer) -> None: ...

    def on_batch_end(self, trainer, batch: int, metrics: dict) -> None: ...

    def on_eval_batch(self, trainer, split: str, done: int, total: int) -> None: ...

    def on_epoch_end(self, trainer, row: dict, improved: bool) -> None: ...

    def on_fit_end(self, trainer, summary: dict) -> None: ...


class Checkpoints(Callback):
    """The run directory: ``config.yaml`` at the start (the resolved config by owner, with
    every option in force: ``config.to_sections``, ``build.in_force``); after each epoch
    ``checkpoint_last.pt`` (and ``checkpoint_best.pt`` at a new best validation accuracy),
    then ``metrics.jsonl`` rewritten from the checkpointed history (so a resumed run never
    duplicates or loses a line) and ``summary.json``. Every file is written atomically; only
    rank 0 writes, but every rank takes part in gathering the state."""

    def on_fit_start(self, trainer) -> None:
        if trainer.dp.main:
            write_atomic_text(trainer.path("config.yaml"),  # by owner, every option in force
                              yaml.safe_dump(to_sections(in_force(trainer.cfg)),
                                             sort_keys=False))

    def on_epoch_end(self, trainer, row: dict, improved: bool) -> None:
        trainer.check_weights(f"before saving epoch {trainer.epoch}")
        state = trainer.state_dict()  # collective: every rank takes part
        if not trainer.dp.main:
            return
        save_atomic(state, trainer.path("checkpoint_last.pt"))
        if improved:
            save_atomic(state, trainer.path("checkpoint_best.pt"))
        write_atomic_text(trainer.path("metrics.jsonl"),
                          "".join(json.dumps(r) + "\n" for r in trainer.history))
        write_atomic_text(trainer.path("summary.json"),
                          json.dumps(trainer.summary(), indent=2))
        trainer.overwrite = True  # the directory now holds this run


class Progress(Callback):
    """In a terminal, a bar per epoch (loss, accuracy, firing rates so far, redrawn at most
    once a second) above one line per epoch; in a log file only the epoch lines."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.bar = None
        self.t_start = time.perf_counter()

    def live(self) -> bool:
        return self.stream.isatty()

    def on_fit_start(self, trainer) -> None:
        self.t_start = time.perf_counter()

    def on_epoch_start(self, trainer) -> None:
        if self.live():
            self.bar = self._new_bar(trainer.batches_per_epoch(),
                                     f"epoch {trainer.epoch + 1}/{trainer.cfg.epochs}")
        self.seen = self.loss = self.correct = 0.0
        self.rates: list[float] = []

    def _new_bar(self, total: int, desc: str):
        # the size the terminal reports, or 100x20 where it reports none: on a pty of size
        # 0x0 (`script`, some CI runners and IDE consoles) tqdm hides a bar below row 0;
        # ASCII blocks where the stream cannot encode Unicode ones
        size = shutil.get_terminal_size((100, 20))
        utf8 = "utf" in (getattr(self.stream, "encoding", None) or "").lower()
        return tqdm(total=total, file=self.stream, leave=False, desc=desc, ncols=size.columns,
                    nrows=size.lines, mininterval=1.0, ascii=not utf8)

    def on_batch_end(self, trainer, batch: int, metrics: dict) -> None:
        if self.bar is None or not metrics["n"]:
            return
        n = metrics["n"]
        self.rates = [(r * self.seen + m * n) / (self.seen + n) for r, m in
                      zip(self.rates or [0.0] * len(metrics["rates"]), metrics["rates"])]
        self.seen += n
        self.loss += metrics["loss_sum"]
        self.correct += metrics["correct"]
        self.bar.set_postfix(loss=f"{self.loss / self.seen:.3f}",
                             acc=f"{self.correct / self.seen:.3f}",
                             rate="/".join(f"{r:.2f}" for r in self.rates), refresh=False)
        self.bar.update(1)

    def on_eval_batch(self, trainer, split: str, done: int, total: int) -> None:
        if not self.live():
            return
        if done == 1:  # the epoch's bar gives way to the evaluation's
            self._close()
            self.bar = self._new_bar(total, f"scoring {split}")
        self.bar.update(1)
        if done == total:
            self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_epoch_end(self, trainer, row: dict, improved: bool) -> None:
        self._close()
        accs = "".join(f"  {k} {row[k]:.4f}" for k in ("train_acc", "val_acc", "test_acc")
                       if row[k] is not None)
        rates = "/".join(f"{r:.2f}" for r in row["firing_rate"])
        elapsed = time.perf_counter() - self.t_start
        angle = ("  angle " + "/".join(f"{a:.1f}" for a in row["feedback_angle"])
                 if row.get("feedback_angle") else "")
        line = (f"epoch {row['epoch']}/{trainer.cfg.epochs}  loss {row['train_loss']:.4f}"
                f"{accs}  rates {rates}{angle}  {row['time_s']:.1f}s  elapsed {elapsed:.0f}s")
        print(line, file=self.stream, flush=True)


class TensorBoard(Callback):
    """TensorBoard event files under ``log_dir`` (``RUNDIR/tensorboard`` from the CLI): per
    batch the training loss and accuracy, per epoch loss, accuracies, learning rate and each
    layer's firing rate and update ratio, all against the global optimizer step (an epoch's
    scalars at its last step). A resumed run purges what a killed one logged after its last
    checkpoint. Needs the ``tensorboard`` package (``pip install -e ".[tensorboard]"``)."""

    def __init__(self, log_dir: str):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError('--log tensorboard needs the tensorboard package: '
                             'pip install -e ".[tensorboard]"') from None
        self.log_dir = log_dir
        self.writer_class = SummaryWriter
        self.writer = None

    def on_fit_start(self, trainer) -> None:
        if trainer.dp.main:
            # steps after the last finished epoch's: what a killed run logged past its checkpoint
            self.writer = self.writer_class(self.log_dir, purge_step=trainer.steps_done() + 1)

    def on_batch_end(self, trainer, batch: int, metrics: dict) -> None:
        if self.writer is not None and metrics["n"]:
            step = trainer.steps_done() + batch + 1
            self.writer.add_scalar("batch/loss", metrics["loss"], step)
            self.writer.add_scalar("batch/acc", metrics["acc"], step)

    def on_epoch_end(self, trainer, row: dict, improved: bool) -> None:
        if self.writer is None:
            return
        step = trainer.steps_done()  # the epoch's last optimizer step
        for k in ("train_loss", "train_acc", "val_acc", "test_acc", "lr"):
            if row.get(k) is not None:
                self.writer.add_scalar(f"epoch/{k}", row[k], step)
        self.writer.add_scalar("epoch/epoch", row["epoch"], step)
        for key, tag in (("firing_rate", "firing_rate"), ("update_ratio", "update_ratio")):
            for i, v in enumerate(row.get(key) or [], 1):
                self.writer.add_scalar(f"{tag}/layer{i}", v, step)
        self.writer.flush()

    def on_fit_end(self, trainer, summary: dict) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

