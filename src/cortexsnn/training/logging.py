"""Run logging: one CSV file of scalars per run plus TensorBoard event files.

The CSV is the durable, tool-free record (one row per ``log`` call, columns ``step``, ``split``
then the scalars, the header written from the first row and widened if new scalars appear);
TensorBoard gets the same scalars under ``<split>/<name>``. Because the CSV holds every scalar
TensorBoard got, a resumed run rebuilds its TensorBoard events from the CSV rows it keeps: events
logged after the checkpoint (a run killed between a log call and the next checkpoint) are dropped
instead of appearing twice.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["RunLogger"]


class RunLogger:
    """Append scalars to ``<log_dir>/metrics.csv`` and to TensorBoard.

    Use as a context manager or call :meth:`close`. When resuming a run, an existing CSV is
    kept and appended to; ``keep_rows`` (the :attr:`rows` count a checkpoint recorded) first cuts
    it to the rows written up to that checkpoint, so that a resumed run logs no row twice.
    ``rebuild_tensorboard`` (a resumed run) replaces the TensorBoard scalar events by those of the
    kept CSV rows, so that TensorBoard, too, shows nothing twice.
    """

    def __init__(self, log_dir: str | os.PathLike, tensorboard: bool = True, enabled: bool = True,
                 keep_rows: int | None = None, rebuild_tensorboard: bool = False) -> None:
        self.log_dir = Path(log_dir)
        self.enabled = enabled
        self.csv_path = self.log_dir / "metrics.csv"
        self._columns: list[str] | None = None
        self._writer = None
        #: data rows in ``metrics.csv`` (store it in a checkpoint; pass it back as ``keep_rows`` on resume)
        self.rows = 0
        if not enabled:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.csv_path.is_file() and self.csv_path.stat().st_size > 0:
            with self.csv_path.open(newline="") as handle:
                reader = csv.reader(handle)
                header = next(reader, None)
                rows = list(reader)
            self._columns = header or None
            if keep_rows is not None and len(rows) > keep_rows and header:
                from cortexsnn.utils.io import atomic_write

                with atomic_write(self.csv_path, "w") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(header)
                    writer.writerows(rows[:keep_rows])
                rows = rows[:keep_rows]
            self.rows = len(rows)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            events = self.log_dir / "tensorboard"
            if rebuild_tensorboard:
                for old in events.glob("events.out.tfevents.*"):
                    old.unlink()
            self._writer = SummaryWriter(log_dir=str(events))
            if rebuild_tensorboard:
                self._replay_csv()

    @property
    def tensorboard(self):
        """The underlying ``SummaryWriter`` (``None`` when TensorBoard is off), for figures."""
        return self._writer

    def log(self, step: int, split: str, **scalars: Any) -> None:
        """Record ``scalars`` (numbers) for ``split`` (e.g. ``"train"``, ``"val"``) at ``step``."""
        if not self.enabled:
            return
        values = {name: float(value) for name, value in scalars.items()}
        row = {"step": int(step), "split": split, **values}
        self._append_csv(row)
        for name, value in values.items():
            self._add_scalar(split, name, value, int(step))

    def _replay_csv(self) -> None:
        """Write the scalars of the CSV's rows to TensorBoard (a resumed run's rebuilt events)."""
        if not self.csv_path.is_file():
            return
        with self.csv_path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                step, split = int(row.pop("step")), row.pop("split")
                for name, text in row.items():
                    if text not in (None, ""):
                        self._add_scalar(split, name, float(text), step)

    def _add_scalar(self, split: str, name: str, value: float, step: int) -> None:
        if self._writer is not None and math.isfinite(value):
            self._writer.add_scalar(f"{split}/{name}", value, step)

    def _append_csv(self, row: dict[str, Any]) -> None:
        if self._columns is None:
            self._columns = list(row)
            with self.csv_path.open("w", newline="") as handle:
                csv.writer(handle).writerow(self._columns)
        new = [key for key in row if key not in self._columns]
        if new:
            self._widen(new)
        with self.csv_path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self._columns).writerow(row)
        self.rows += 1

    def _widen(self, new_columns: list[str]) -> None:
        with self.csv_path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        self._columns = [*self._columns, *new_columns]  # type: ignore[misc]
        from cortexsnn.utils.io import atomic_write

        with atomic_write(self.csv_path, "w") as handle:
            writer = csv.DictWriter(handle, fieldnames=self._columns)
            writer.writeheader()
            writer.writerows(rows)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
