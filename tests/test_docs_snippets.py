"""The Python blocks of docs/guide.md marked to run do run, as written.

A block is marked by the line ``<!-- test: run -->`` just before its opening fence; ``data=NAME``
in the marker names a data set folder the block reads (it is skipped with a reason when
``$CORTEXSNN_DATA/NAME`` is absent). Each block runs in a fresh namespace, in a temporary working
folder (so what it writes under ``runs/`` goes there), with ``CORTEXSNN_DATA`` pointing at the
real-data folder. The blocks are written small (64-pixel images, few resamples), so they run as
they stand.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "guide.md"
_MARKER = re.compile(r"^<!-- test: run(?P<options>[^>]*)-->\s*\n```python\n(?P<code>.*?)^```", re.M | re.S)


def marked_blocks(text: str) -> list[tuple[int, str, list[str]]]:
    """``(line, code, data sets needed)`` of every block marked to run, in document order."""
    blocks = []
    for match in _MARKER.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        options = match.group("options").split()
        data = [o.split("=", 1)[1] for o in options if o.startswith("data=")]
        unknown = [o for o in options if not o.startswith("data=")]
        assert not unknown, f"docs/guide.md line {line}: unknown marker options {unknown}"
        blocks.append((line, match.group("code"), data))
    return blocks


def shared_data_dir() -> Path:
    """``$CORTEXSNN_DATA`` or ``<repo>/../shared/data`` (as tests/conftest.py)."""
    env = os.environ.get("CORTEXSNN_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


BLOCKS = marked_blocks(GUIDE.read_text(encoding="utf-8"))
PARAMS = [pytest.param(*block, id=f"guide.md:{block[0]}", marks=[pytest.mark.data] if block[2] else [])
          for block in BLOCKS]


_FILE = re.compile(r"^<!-- test: file -->\s*\n```python\n# (?P<name>\w+)\.py[^\n]*\n(?P<code>.*?)^```", re.M | re.S)


def test_every_python_block_of_the_guide_is_marked():
    assert len(BLOCKS) >= 6
    text = GUIDE.read_text(encoding="utf-8")
    fences = len(re.findall(r"^```python\n", text, re.M))
    assert fences == len(BLOCKS) + len(_FILE.findall(text)), \
        "every ```python block of docs/guide.md must be marked <!-- test: run --> or <!-- test: file -->"


def test_guide_factory_files_build_their_networks(tmp_path, monkeypatch):
    """A block marked as a file (a factory module for ``--models module:factory``) is saved under its
    name, and every factory in it builds a network that declares its feed mode and scored layers."""
    from torch import nn

    from cortexsnn.models.external import load_model_spec

    files = _FILE.findall(GUIDE.read_text(encoding="utf-8"))
    assert files
    monkeypatch.syspath_prepend(str(tmp_path))
    for name, code in files:
        (tmp_path / f"{name}.py").write_text(code, encoding="utf-8")
        for factory in re.findall(r"^def (\w+)\(", code, re.M):
            net = load_model_spec(f"{name}:{factory}")
            assert isinstance(net, nn.Module)
            assert net.feature_mode in ("static", "cnn") and net.scoring_layers
            modules = dict(net.named_modules())
            assert all(layer in modules for layer in net.scoring_layers)


def test_the_marker_parser_finds_marked_blocks_only():
    text = ("<!-- test: run data=kriegeskorte92 -->\n```python\nx = 1\n```\n\n```python\ny = 2\n```\n"
            "<!-- test: run -->\n```python\nz = 3\n```\n")
    assert marked_blocks(text) == [(1, "x = 1\n", ["kriegeskorte92"]), (9, "z = 3\n", [])]


@pytest.mark.parametrize("line,code,data", PARAMS)
def test_guide_block_runs(line, code, data, tmp_path, monkeypatch):
    root = shared_data_dir()
    missing = [name for name in data if not (root / name).is_dir()]
    if missing:
        pytest.skip(f"data set folder(s) {missing} absent under {root} (set CORTEXSNN_DATA)")
    monkeypatch.setenv("CORTEXSNN_DATA", str(root))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"guide_block_{line}"}
    exec(compile(code, f"docs/guide.md:{line}", "exec"), namespace)
    if "result.write(" in code or "table.write(" in code:
        written = list((tmp_path / "runs").rglob("results.json"))
        assert written, f"docs/guide.md line {line}: the block says it writes results, and none were written"
        assert all(os.path.getsize(p) > 0 for p in written)


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a document's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_document_and_section_the_guide_links_exists():
    text = GUIDE.read_text(encoding="utf-8")
    for target, anchor in sorted(set(re.findall(r"\]\(([a-z0-9_-]+\.md)?(?:#([^)]*))?\)", text))):
        path = GUIDE.parent / target if target else GUIDE
        assert path.is_file(), f"docs/guide.md links {target}, which does not exist"
        if anchor:
            assert anchor in _anchors(path.read_text(encoding="utf-8")), f"docs/guide.md links {target}#{anchor}: no such heading"
    assert Path(REPO / "README.md").read_text(encoding="utf-8").find("docs/guide.md") >= 0, \
        "README.md must link the user guide"
