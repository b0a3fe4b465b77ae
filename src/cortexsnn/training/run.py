"""The run substrate shared by every training command: gradient training (``cortexsnn train``), IIR
training (``cortexsnn iir train`` / ``iir memory``) and STDP / R-STDP training (``cortexsnn stdp train``).

A :class:`TrainingRun` is one training run in its output folder. It owns everything that is not
the learning itself:

* the run folder (:class:`~cortexsnn.utils.runfolder.RunFolder`: checked before any computing,
  locked while the run lasts, ``run.json`` saying how it ended; a folder holding another run is
  refused unless resumed or overwritten);
* exact resume: the latest checkpoint is read back (``checkpoint_latest.pt``, or the name an older
  version wrote, see :data:`LEGACY_LATEST`), its stored config must equal the run's except for
  the keys the trainer declares mutable (:func:`~cortexsnn.config.check_resume_config`), and the
  random-number states are restored by the trainer from it;
* atomic checkpoints under one scheme: ``checkpoint_latest.pt`` after every epoch (and at an
  interruption) and ``checkpoint_best.pt`` on a better validation score, the best one written
  first (a kill between the two writes never leaves a latest checkpoint naming a best epoch whose
  file is missing); every checkpoint holds the config, the random states and the number of
  ``metrics.csv`` rows so far;
* logs: ``metrics.csv`` plus TensorBoard under one tag scheme, ``<split>/<metric>`` with the
  splits ``train``, ``val`` and ``test`` once per epoch (step = the epoch number) and
  ``train_batch`` per logged batch (step = the batch number counted from the start of the run);
  a resume cuts ``metrics.csv`` back to the checkpoint's rows and rebuilds the TensorBoard events
  from them, so that nothing logged after the checkpoint appears twice;
* SIGINT / SIGTERM (:class:`~cortexsnn.training.signals.StopFlag`): the epoch loop
  (:meth:`TrainingRun.fit_epochs`) stops after the current batch, the trainer writes a checkpoint
  of that position and :class:`TrainingInterrupted` ends the run (``--resume`` continues it);
* progress bars (tqdm, on stderr) and ``logging`` (never ``print``);
* one ``results.json`` per run (:meth:`TrainingRun.write_results`), written atomically 0644::

      {"kind": "iir train", "status": "complete", "metrics": {...}, "best": {...},
       "epochs": [{...}, ...], "config": {...}, "versions": {"cortexsnn": ..., "torch": ..., "python": ...}}

Each trainer keeps only what is its own: the objective, the step on a batch, the evaluation, and
what its checkpoints hold besides the common entries (an :class:`EpochTrainer`).
"""
from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol, Sequence

import numpy as np
import torch

from cortexsnn.config import check_resume_config
from cortexsnn.errors import CortexSNNError
from cortexsnn.training.logging import RunLogger
from cortexsnn.training.signals import StopFlag
from cortexsnn.utils.checkpoint import CheckpointError, capture_rng_state, load_checkpoint, save_checkpoint
from cortexsnn.utils.io import atomic_write_text
from cortexsnn.utils.jsonable import json_safe, versions

__all__ = [
    "TrainingRun",
    "EpochTrainer",
    "TrainingInterrupted",
    "seed_everything",
    "find_latest_checkpoint",
    "CHECKPOINT_LATEST",
    "CHECKPOINT_BEST",
    "RESULTS_NAME",
    "LEGACY_LATEST",
    "RUN_OUTPUTS",
]

CHECKPOINT_LATEST = "checkpoint_latest.pt"
CHECKPOINT_BEST = "checkpoint_best.pt"
RESULTS_NAME = "results.json"
#: names of the latest checkpoint in run folders of older versions (``cortexsnn stdp train`` wrote
#: ``checkpoint.pt``), still read on resume and evaluation
LEGACY_LATEST = ("checkpoint.pt",)
#: what every training run writes into its folder (a folder holding any of them holds a run)
RUN_OUTPUTS = (CHECKPOINT_LATEST, CHECKPOINT_BEST, "metrics.csv", RESULTS_NAME, "tensorboard")

_log = logging.getLogger(__name__)


class TrainingInterrupted(CortexSNNError, RuntimeError):
    """Training stopped (SIGINT / SIGTERM, or a planned stop) after writing a checkpoint to resume from."""


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's, NumPy's and torch's generators; ``deterministic`` also asks torch for
    deterministic algorithms (a warning, not an error, where an operation has none)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def find_latest_checkpoint(folder: str | Path) -> Path | None:
    """The latest checkpoint of the run in ``folder`` (:data:`CHECKPOINT_LATEST`, or a name of
    :data:`LEGACY_LATEST` in folders of older versions); ``None`` when there is none."""
    for name in (CHECKPOINT_LATEST, *LEGACY_LATEST):
        path = Path(folder) / name
        if path.is_file():
            return path
    return None


class EpochTrainer(Protocol):
    """What a trainer gives :meth:`TrainingRun.fit_epochs`: its own data, step and evaluation."""

    def batches(self, epoch: int, start: int) -> Iterable[Any]:
        """The batches of ``epoch`` (0-based) from batch ``start`` on (a resumed epoch starts later)."""

    def step(self, epoch: int, index: int, batch: Any) -> Optional[Mapping[str, Any]]:
        """Learn from batch ``index`` of ``epoch``; may return values for the progress bar."""

    def save_position(self, epoch: int, batches_done: int) -> None:
        """Write the latest checkpoint inside ``epoch`` after ``batches_done`` batches (an interruption)."""

    def end_epoch(self, epoch: int) -> None:
        """Evaluate, log and checkpoint after the last batch of ``epoch``."""


class TrainingRun:
    """One training run in its output folder (see the module docstring); a context manager.

    Args:
        out: the run folder.
        command: what runs, e.g. ``"iir train"`` (the manifest's command and ``results.json``'s kind).
        config: the run's config as plain data (stored in every checkpoint and in ``results.json``).
        kind: the ``kind`` entry of the run's checkpoints (a resume refuses a checkpoint of another kind).
        resume: continue the run in ``out`` from its latest checkpoint (:attr:`record`).
        overwrite: replace the run in ``out`` (its outputs are deleted first).
        mutable: config keys a resumed run may change (run length, logging); any other change is refused.
        outputs: what the command writes into ``out`` besides :data:`RUN_OUTPUTS`.
        tensorboard: write TensorBoard events besides ``metrics.csv``.
        progress: show tqdm progress bars (on stderr).
        enabled: ``False`` for the processes of a distributed run other than rank 0 (no files written).
        should_stop: whether to stop after the current batch (default: a SIGINT / SIGTERM arrived;
            a distributed run passes a check that all processes agree on).
        stop_after_batches: stop (as if interrupted) after so many training batches of this
            invocation (tests of the resume).
        argument_names: how messages name ``resume`` / ``overwrite`` (a command line passes its flags).
        read_config: turns the config stored in a checkpoint into the form of ``config`` before the
            resume check (e.g. a config of an older layout); default: as stored.
    """

    def __init__(self, out: str | Path, command: str, config: Mapping[str, Any], *, kind: str,
                 resume: bool = False, overwrite: bool = False, mutable: Sequence[str] = (),
                 outputs: Sequence[str] = (), tensorboard: bool = True, progress: bool = True,
                 enabled: bool = True, should_stop: Callable[[], bool] | None = None,
                 stop_after_batches: int | None = None,
                 argument_names: Mapping[str, str | None] | None = None,
                 read_config: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None) -> None:
        from cortexsnn.utils.runfolder import RunFolder

        self.out = Path(out)
        self.command = command
        self.config = dict(config)
        self.kind = kind
        self.resume = resume
        self.mutable = tuple(mutable)
        self.read_config = read_config or (lambda stored: stored)
        self.tensorboard = tensorboard
        self.progress_bars = progress
        self.enabled = enabled
        self.stop_after_batches = stop_after_batches
        self.outputs = tuple(dict.fromkeys((*RUN_OUTPUTS, *outputs)))
        self.folder = RunFolder(self.out, command, self.config, outputs=self.outputs, resume=resume,
                                overwrite=overwrite, interrupts=(TrainingInterrupted,), enabled=enabled,
                                argument_names=argument_names)
        self._resume_argument = (argument_names or {}).get("resume") or "resume=True"
        self.stop = StopFlag()
        #: whether to stop after the current batch (replaceable, e.g. by a check all processes agree on)
        self.should_stop: Callable[[], bool] = should_stop or (lambda: self.stop.requested)
        self.batches_done = 0
        #: the checkpoint resumed from (``None`` for a new run)
        self.record: dict[str, Any] | None = None
        self.logger: RunLogger | None = None
        self.latest = self.out / CHECKPOINT_LATEST
        self.best = self.out / CHECKPOINT_BEST
        self._stopped_early = False

    # ------------------------------------------------------------------ context
    def __enter__(self) -> "TrainingRun":
        self.folder.start()
        try:
            if self.resume:
                self.record = self._resume_record()
            keep_rows = None if self.record is None else self.record.get("log_rows")
            if self.record is not None and keep_rows is None:  # `stdp train` before the substrate kept it there
                keep_rows = (self.record.get("fit_state") or {}).get("log_rows")
            if self.record is not None and keep_rows is None:
                _log.warning("%s predates row counts: metrics.csv may repeat rows logged after it", self.latest.name)
            self.logger = RunLogger(self.out, tensorboard=self.tensorboard, enabled=self.enabled,
                                    keep_rows=keep_rows, rebuild_tensorboard=self.record is not None)
            self.stop.__enter__()
        except BaseException as exc:
            if self.logger is not None:
                self.logger.close()
            self.folder.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop.__exit__(exc_type, exc, tb)
        if self.logger is not None:
            self.logger.close()
        if exc_type is None and self._stopped_early:
            self.folder.mark_interrupted()
        if self.enabled:
            self.folder.record(*(self.out / name for name in self.outputs if (self.out / name).exists()))
        self.folder.__exit__(exc_type, exc, tb)

    def _resume_record(self) -> dict[str, Any]:
        path = find_latest_checkpoint(self.out)
        if path is None:
            raise CheckpointError(f"cannot resume: {self.latest} does not exist; start without "
                                  f"{self._resume_argument}")
        record = load_checkpoint(path, kind=self.kind)
        if isinstance(record.get("config"), Mapping):
            check_resume_config(self.read_config(dict(record["config"])), self.config, self.mutable)
        _log.info("resuming %s", path)
        return record

    # ------------------------------------------------------------------ checkpoints
    def save(self, payload: Mapping[str, Any], best: bool = False) -> None:
        """Write ``payload`` (the trainer's own entries) as the latest checkpoint, and first as the best
        one when ``best``; the kind, config, random states and ``metrics.csv`` row count are added."""
        if not self.enabled:
            return
        record = {"kind": self.kind, **payload, "config": self.config, "rng": capture_rng_state(),
                  "log_rows": self.logger.rows if self.logger is not None else 0}
        if best:
            save_checkpoint(self.best, record)
        save_checkpoint(self.latest, record)

    def load_best(self) -> dict[str, Any]:
        """The best checkpoint (the latest where the run wrote no best one)."""
        return load_checkpoint(self.best if self.best.is_file() else self.latest, kind=self.kind)

    # ------------------------------------------------------------------ the loop skeleton
    def progress(self, iterable: Iterable[Any], desc: str, total: int | None = None):
        """``iterable`` with a tqdm progress bar on stderr (as it is when progress bars are off)."""
        if not (self.progress_bars and self.enabled):
            return iterable
        import sys

        from tqdm import tqdm

        return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stderr)

    def stop_requested(self) -> bool:
        """Whether to stop after the current batch (a signal, or ``stop_after_batches`` reached)."""
        planned = self.stop_after_batches is not None and self.batches_done >= self.stop_after_batches
        return self.should_stop() or planned

    def fit_epochs(self, trainer: EpochTrainer, start_epoch: int, start_batch: int, end_epoch: int,
                   steps_per_epoch: int, epochs: int) -> None:
        """Train epochs ``start_epoch`` .. ``end_epoch - 1`` (0-based), the first from batch ``start_batch``.

        Each epoch runs ``trainer.step`` on at most ``steps_per_epoch`` batches, then
        ``trainer.end_epoch``. A stop request (:meth:`stop_requested`) inside an epoch makes the
        trainer save its position and raises :class:`TrainingInterrupted`; one at an epoch's last
        batch ends that epoch first. ``epochs`` (the run's length) is for the progress bars only.
        ``end_epoch < epochs`` (a run cut into parts) marks the run folder ``interrupted``.
        """
        for epoch in range(start_epoch, end_epoch):
            position = start_batch if epoch == start_epoch else 0
            bar = self.progress(trainer.batches(epoch, position), f"epoch {epoch + 1}/{epochs}",
                                total=max(steps_per_epoch - position, 0))
            for batch in bar:
                if position >= steps_per_epoch:
                    break
                shown = trainer.step(epoch, position, batch)
                position += 1
                self.batches_done += 1
                if shown and hasattr(bar, "set_postfix"):
                    bar.set_postfix(shown)
                if position < steps_per_epoch and self.stop_requested():
                    trainer.save_position(epoch, position)
                    raise TrainingInterrupted(self._stop_message(f"at epoch {epoch + 1}, batch {position}"))
            trainer.end_epoch(epoch)
            if epoch + 1 < end_epoch and self.stop_requested():
                raise TrainingInterrupted(self._stop_message(f"after epoch {epoch + 1}"))
        if end_epoch < epochs:
            self._stopped_early = True

    def check_stop(self, where: str) -> None:
        """Raise :class:`TrainingInterrupted` when a stop was requested (for trainers with their own
        loop, after a checkpoint at ``where``)."""
        if self.stop_requested():
            raise TrainingInterrupted(self._stop_message(where))

    def _stop_message(self, where: str) -> str:
        cause = f"by signal {self.stop.signal}" if self.stop.requested else "as planned"
        return (f"training stopped {cause} {where}; checkpoint written to {self.latest}. "
                f"Continue with {self._resume_argument}.")

    # ------------------------------------------------------------------ results
    def write_results(self, metrics: Mapping[str, Any], best: Mapping[str, Any] | None = None,
                      epochs: Sequence[Mapping[str, Any]] = (), status: str | None = None) -> Path | None:
        """Write ``results.json`` (atomically, 0644) in the one schema of every training run."""
        if not self.enabled:
            return None
        record = {"kind": self.command, "status": status or ("interrupted" if self._stopped_early else "complete"),
                  "metrics": dict(metrics), "best": dict(best or {}), "epochs": list(epochs),
                  "config": self.config, "versions": versions()}
        path = self.out / RESULTS_NAME
        atomic_write_text(path, json.dumps(json_safe(record), indent=2) + "\n")
        return path
