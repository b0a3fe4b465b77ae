"""Fault injection for the fault tests (``tests/faults``): a signal sent to this process at a named point.

The environment variable ``CORTEXSNN_FAULT`` holds comma-separated rules ``POINT@N:SIGNAL``; the
process sends itself ``SIGNAL`` (``KILL``, ``INT``, ``TERM`` or ``STOP``) the ``N``-th time it passes
``POINT`` (counted from 1 in this process). Points:

* ``step`` - after every optimiser / plasticity update of ``cortexsnn train`` and ``stdp train``, and
  after each model's layer RDMs on each stimulus set in :func:`~cortexsnn.similarity.suite.score_suite`
  (``demo`` / ``benchmark``);
* ``write:NAME`` - inside :func:`cortexsnn.utils.io.atomic_write` of a file called ``NAME``, after
  its temporary file is written and synced and before it is renamed into place (so ``KILL`` there
  leaves the temporary file of an interrupted write, and the files written before it).

For example ``CORTEXSNN_FAULT=write:checkpoint_latest.pt@2:KILL`` kills the run while it writes its
second latest checkpoint; ``step@5:INT`` interrupts it (as Ctrl-C would) after its fifth step;
``step@1:STOP`` freezes it there, holding its run folder, until it gets ``SIGCONT``.

Without the variable a point costs one dictionary look-up; the variable is read once.
"""
from __future__ import annotations

import os
import signal

__all__ = ["ENV", "fault_point"]

ENV = "CORTEXSNN_FAULT"
_SIGNALS = {"KILL": signal.SIGKILL, "INT": signal.SIGINT, "TERM": signal.SIGTERM, "STOP": signal.SIGSTOP}

_rules: dict[str, list[tuple[int, int]]] | None = None
_counts: dict[str, int] = {}


def _parse(text: str) -> dict[str, list[tuple[int, int]]]:
    rules: dict[str, list[tuple[int, int]]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        point, at, rest = item.rpartition("@")
        count, colon, name = rest.partition(":")
        if not (at and point and colon and count.isdigit() and name.upper() in _SIGNALS):
            raise ValueError(f"{ENV}: {item!r} is not POINT@N:SIGNAL (SIGNAL one of {', '.join(_SIGNALS)}), "
                             "e.g. step@3:KILL")
        rules.setdefault(point, []).append((int(count), _SIGNALS[name.upper()]))
    return rules


def fault_point(point: str) -> None:
    """Count a pass through ``point`` and send the signal a ``CORTEXSNN_FAULT`` rule asks for (if any)."""
    global _rules
    if _rules is None:
        _rules = _parse(os.environ.get(ENV, ""))
    if not _rules or point not in _rules:
        return
    _counts[point] = _counts.get(point, 0) + 1
    for count, signum in _rules[point]:
        if count == _counts[point]:
            os.kill(os.getpid(), signum)
