"""The HTML report: contents, atomic writing, figures, and a render in headless Chromium."""
from __future__ import annotations

import html
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cortexsnn.similarity.results import ScoreTable
from cortexsnn.similarity.report import (depth_figure, heatmap_figure, rank_transform, rdm_figure, weights_status,
                                         write_report)

CHROMIUM = Path("/usr/bin/chromium")
LAYERS = ["sn1", "maxpool", "layer1.0", "layer1.1", "layer2.0", "avgpool"]
AREAS = ["monkey IT", "human IT"]


def _table(model: str, weights: str | None, seed: int = 0, layers=LAYERS, silent=("maxpool",), ci=True) -> ScoreTable:
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.0, 0.4, (len(layers), len(AREAS)))
    for name in silent:
        scores[layers.index(name)] = np.nan
    config = {"silent_reasons": {s: "identical features for every stimulus" for s in silent}, "time_steps": 4}
    if weights is not None:
        config["weights"] = weights
    return ScoreTable(
        model=model, metric="rsa", neural_dataset="kriegeskorte92", layers=list(layers), areas=AREAS, scores=scores,
        ci_low=scores - 0.05 if ci else None, ci_high=scores + 0.04 if ci else None,
        ceiling={"human IT": {"mean": 0.45, "std": 0.1, "lower": 0.35, "upper": 0.55,
                              "method": "leave-one-subject-out (4 RDMs)"}},
        silent_layers=list(silent), config=config, versions={"torch": "2.x", "cortexsnn": "0.1"}, seeds={"bootstrap": 0})


def _rdm(n: int = 12, seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).random((n, n))
    a = a + a.T
    np.fill_diagonal(a, 0.0)
    return a


def _write(tmp_path: Path) -> tuple[Path, list[ScoreTable]]:
    tables = [_table("sew_resnet18", "UNTRAINED: random initialisation (torch seed 0)", seed=1),
              _table("lorafb_snet18", "/ckpt/lorafb.pth (imagenet)", seed=2),
              _table("resnet18", None, seed=3, silent=())]
    path = write_report([t.to_dict() for t in tables[:2]] + [tables[2]], tmp_path / "report",
                        rdms={"monkey IT": _rdm(seed=1), "sew_resnet18 avgpool": _rdm(seed=2)},
                        title="Demo <report>", notes=["92 images & two areas"])
    return path, tables


def test_rank_transform_hand_values():
    rdm = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [2.0, 2.0, 0.0]])
    # off-diagonal values 1, 2, 2 -> ranks 1, 2.5, 2.5 -> percentiles 0, 75, 75
    np.testing.assert_allclose(rank_transform(rdm), [[0, 0, 75], [0, 0, 75], [75, 75, 0]])
    with pytest.raises(ValueError, match="square"):
        rank_transform(np.zeros((2, 3)))


def test_weights_status():
    assert weights_status({"config": {"weights": "UNTRAINED: random"}})[0] is False
    assert weights_status({"config": {"weights": "a.pth"}}) == (True, "a.pth")
    assert weights_status({"config": {"trained": False}})[0] is False
    assert weights_status({"config": {}})[0] is None


def test_report_contents(tmp_path):
    path, tables = _write(tmp_path)
    assert path == tmp_path / "report" / "report.html"
    text = path.read_text()
    assert "<title>Demo &lt;report&gt;</title>" in text and "92 images &amp; two areas" in text
    # every model with its status, stated clearly
    assert "UNTRAINED (random weights)" in text and "/ckpt/lorafb.pth (imagenet)" in text and "not recorded" in text
    assert text.count('class="untrained"') == 2  # summary row + per-model section of sew_resnet18
    for t in tables:
        # monkey IT has no ceiling, human IT has one: their raw scores are never averaged into a model score
        assert math.isnan(t.model_score) and ">nan<" not in text
        for area, layer in t.best_layer.items():
            assert f"{html.escape(layer)}<br>{t.best_score[area]:.4f}" in text
    pct = 100 * tables[0].best_score["human IT"] / 0.55  # normalised by the upper bound
    assert f"({pct:.0f}%)" in text
    assert "leave-one-subject-out (4 RDMs)" in text and "0.3500" in text and "0.5500" in text  # ceiling
    assert "maxpool (silent: not scored)" in text and "identical features for every stimulus" in text
    assert "&quot;time_steps&quot;: 4" in text and "cortexsnn" in text  # config and versions
    # figures: linked, beside the page, real PNGs; no external resources, no scripts
    images = re.findall(r'<img src="([^"]+)"', text)
    assert len(images) == 1 + 1 + 3  # depth, RDMs, one heatmap per table
    for name in images:
        with Image.open(path.parent / name) as im:
            assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 150
    assert "<script" not in text and not re.search(r'(src|href)="(https?:)?//', text)
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(images + ["report.html"])  # no temporary files


def test_bad_input_writes_nothing(tmp_path):
    good = _table("sew_resnet18", None).to_dict()
    bad = dict(good, scores=good["scores"][:-1])
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="scores holds"):
        write_report([good, bad], out)
    with pytest.raises(ValueError, match="lacks"):
        write_report([{"model": "x"}], out)
    with pytest.raises(ValueError, match="different numbers of stimuli"):
        write_report([good], out, rdms={"a": _rdm(12), "b": _rdm(10)})
    with pytest.raises(ValueError, match="at least one"):
        write_report([], out)
    assert not out.exists() or not any(out.iterdir())


def test_figures_other_layouts():
    """Models of different depths share the depth axis as relative depth; tables without CIs or
    ceilings, with an area that has no scored layer, still draw."""
    short = _table("a", None, layers=["l1", "l2", "l3"], silent=(), ci=False)
    empty = _table("b", None, seed=4)
    empty.scores[:, 0] = np.nan
    fig = depth_figure([short.to_dict(), empty.to_dict()])
    assert "relative depth" in fig.axes[0].get_xlabel()
    assert heatmap_figure(empty.to_dict()).axes
    assert len(rdm_figure({str(k): _rdm(seed=k) for k in range(5)}).axes) == 8 + 1  # 2 rows x 4 + colour bar


def _chromium(*args: str, user_dir: Path) -> subprocess.CompletedProcess:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={user_dir}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(r":CONSOLE[:(\]]", line)]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium; .ci/run "
                                                    "installs it)")
def test_report_renders_in_headless_chromium(tmp_path):
    path, _ = _write(tmp_path)
    shot = tmp_path / "shot.png"
    run = _chromium(f"--screenshot={shot}", "--window-size=1280,2000", path.as_uri(), user_dir=tmp_path / "profile1")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-3000:]
    assert _console_messages(run.stderr) == []
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("L"), dtype=np.float64)
    assert pixels.shape == (2000, 1280)
    assert pixels.std() > 20.0  # not a blank page
    assert (pixels < 128).mean() > 0.02  # text and figures drawn
    # the figures load and decode in the browser: a copy of the page with a check script
    probe = path.parent / "probe.html"
    script = ("<script>window.addEventListener('load', function () { var bad = [];"
              " for (var i = 0; i < document.images.length; i++) { var im = document.images[i];"
              " if (!im.complete || im.naturalWidth === 0) bad.push(im.getAttribute('src')); }"
              " document.body.setAttribute('data-images', document.images.length + ':' + bad.join(','));"
              " if (bad.length) console.error('broken images: ' + bad.join(', ')); });</script>")
    probe.write_text(path.read_text().replace("</body>", script + "</body>"))
    run = _chromium("--dump-dom", probe.as_uri(), user_dir=tmp_path / "profile2")
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'data-images="5:"' in run.stdout, run.stdout[-2000:]
    assert _console_messages(run.stderr) == []


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent")
def test_console_check_can_fail(tmp_path):
    """The console check of the Chromium test sees a page's errors (so it is not vacuous)."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><script>console.error('boom');</script></body></html>")
    run = _chromium("--dump-dom", page.as_uri(), user_dir=tmp_path / "profile")
    assert any("boom" in line for line in _console_messages(run.stderr))



def test_all_silent_model_is_said_so(tmp_path):
    table = _table("lorafb_snet18", "UNTRAINED: random", silent=tuple(LAYERS))
    text = write_report([table.to_dict()], tmp_path).read_text()
    assert text.count("every layer silent") == 2 and "6 of 6" in text
    assert not np.isfinite(table.model_score)
