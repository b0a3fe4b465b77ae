"""SIGINT / SIGTERM as a flag that training loops check between batches."""
from __future__ import annotations

import signal
from typing import Any

__all__ = ["StopFlag"]


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between batches (handlers restored on exit).

    A second signal while the flag is set raises ``KeyboardInterrupt`` at once.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:  # second signal: give up at once
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
