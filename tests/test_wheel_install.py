"""A user install: the built wheel, in a fresh virtual environment without the dev extras, runs the
README's commands (shrunk to seconds) from a folder outside the checkout.

What it catches: files the package needs but the wheel lacks (configs, C kernels), imports of
modules that only the dev extras install (mlxtend was one), and commands that only work from the
repository root.

How the environment is made, offline and in seconds rather than the minutes and 5 GB that installing
PyTorch again would take:

1. the wheel is built from a copy of ``src/``, ``pyproject.toml``, ``README.md`` and ``LICENSE``
   (``pip wheel --no-deps --no-build-isolation`` with the test environment's setuptools when it is
   70.1 or newer, else in pip's isolated build environment);
2. a new venv (``python -m venv --without-pip``) gets, as symbolic links into its site-packages,
   exactly the installed distributions that the wheel's ``Requires-Dist`` (no extras) needs,
   transitively, read from the wheel's metadata and taken from the environment running the tests:
   their files as their ``RECORD`` lists them, so a namespace folder shared with a distribution
   outside that set (e.g. ``nvidia/``) is linked file group by file group. Nothing of the dev extras
   (pytest, spikingjelly, snntorch, norse, rsatoolbox, h5py, av, ...) is importable there;
3. pip installs the wheel into that venv with ``--no-index``: it resolves the wheel's requirements
   against the linked distributions (a requirement the environment cannot satisfy fails here), then
   ``pip check`` confirms them.

The commands then run with the venv's ``cortexsnn`` script, from a temporary folder, without
``PYTHONPATH``, with their own cache folder (seeded with the C kernels this test session compiled,
see ``UserInstall``); commands that need real data read ``CORTEXSNN_DATA`` (default
``../shared/data``) and are skipped, with the reason, when it is absent. The timings of every step
are printed at the end (and written to ``timings.txt`` in the test's folder).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
from collections import defaultdict
from importlib import metadata
from pathlib import Path, PurePosixPath

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 600


def _shared_data() -> Path:
    env = os.environ.get("CORTEXSNN_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


# ----------------------------------------------------------------------------- building the environment
def _site_distributions() -> list[metadata.Distribution]:
    """The distributions installed in this environment's site-packages (not what an import put on
    ``sys.path``, such as setuptools' vendored packages)."""
    folders = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    return list(metadata.distributions(path=folders))


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(requires: list[str] | None, extras: frozenset[str] = frozenset()) -> list[tuple[str, frozenset[str]]]:
    """``(name, extras)`` of the requirements that apply here, for a distribution installed with
    ``extras`` (none for the wheel: a user install without extras)."""
    from packaging.requirements import Requirement

    out = []
    for text in requires or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
            out.append((_normalise(req.name), frozenset(req.extras)))
    return out


def _closure(roots: list[tuple[str, frozenset[str]]]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``roots`` need, transitively, extras of requirements included
    (``cuda-toolkit[cublas,...]``), as pip would install them."""
    installed = {_normalise(d.metadata["Name"]): d for d in _site_distributions()}
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = list(roots)
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        if name not in installed:
            raise AssertionError(f"the wheel needs {name}, which the test environment does not have installed")
        found[name] = installed[name]
        todo.extend(_requirements(found[name].requires, extras))
    return found


def _link_distributions(dists: dict[str, metadata.Distribution], target: Path) -> int:
    """Symlink the files of ``dists`` into the site-packages folder ``target``; returns the links made."""
    owners: dict[tuple[str, ...], set[str]] = defaultdict(set)
    roots: dict[str, Path] = {}
    for dist in _site_distributions():
        name = _normalise(dist.metadata["Name"])
        for file in dist.files or []:
            parts = PurePosixPath(str(file)).parts
            if not parts or parts[0] == ".." or parts[0] == "__pycache__":
                continue
            for i in range(1, len(parts) + 1):
                owners[parts[:i]].add(name)
        if name in dists:
            roots[name] = Path(str(dist.locate_file("")))
    site = {roots[n] for n in dists}
    if len(site) != 1:
        raise AssertionError(f"the distributions live in several folders ({site}); expected one site-packages")
    source = site.pop()
    wanted = set(dists)
    children: dict[tuple[str, ...], set[tuple[str, ...]]] = defaultdict(set)
    for prefix in owners:
        children[prefix[:-1]].add(prefix)
    links = 0

    def link(prefix: tuple[str, ...]) -> None:
        nonlocal links
        here = target.joinpath(*prefix)
        if owners[prefix] <= wanted:
            if (source.joinpath(*prefix)).exists() and not here.exists():
                here.symlink_to(source.joinpath(*prefix))
                links += 1
            return
        here.mkdir(exist_ok=True)
        for child in children[prefix]:
            if owners[child] & wanted:
                link(child)

    for top in children[()]:
        if owners[top] & wanted:
            link(top)
    return links


def _build_wheel(work: Path) -> Path:
    tree = work / "source"
    tree.mkdir()
    shutil.copytree(REPO / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.so"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, tree / name)
    from packaging.version import Version

    try:  # setuptools >= 70.1 builds wheels by itself: build with this environment's, offline
        offline = Version(metadata.version("setuptools")) >= Version("70.1")
    except metadata.PackageNotFoundError:
        offline = False
    isolation = ["--no-build-isolation", "--no-index"] if offline else []  # else pip fetches setuptools + wheel
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(work / "dist"), str(tree)],
         cwd=work)
    (wheel,) = (work / "dist").glob("cortexsnn-*.whl")
    return wheel


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {done.returncode}\n--- stdout\n{done.stdout[-4000:]}"
                             f"\n--- stderr\n{done.stderr[-4000:]}")
    return done


class UserInstall:
    """The fresh venv with the wheel installed, and a folder outside the checkout to run in."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.timings: dict[str, float] = {}
        start = time.perf_counter()
        self.wheel = _build_wheel(root)
        self.timings["build the wheel"] = time.perf_counter() - start

        start = time.perf_counter()
        self.venv = root / "venv"
        _run([sys.executable, "-m", "venv", "--without-pip", str(self.venv)], cwd=root)
        self.python = self.venv / "bin" / "python"
        site = Path(_run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         cwd=root).stdout.strip())
        from zipfile import ZipFile

        with ZipFile(self.wheel) as wheel:
            meta_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
            meta = wheel.read(meta_name).decode()
        self.requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
        self.dists = _closure(_requirements(self.requires))
        _link_distributions(self.dists, site)
        pip = [sys.executable, "-m", "pip", "--python", str(self.python)]
        _run([*pip, "install", "--no-index", "-q", str(self.wheel)], cwd=root, env=self._pip_env())
        _run([*pip, "check"], cwd=root, env=self._pip_env())
        self.timings["make the venv and install the wheel"] = time.perf_counter() - start

        self.home = root / "user"
        self.home.mkdir()
        # C kernels the earlier tests of this session compiled (same sources, same flags) are reused:
        # their cache key is a hash of the installed package's .c file, so a kernel source missing
        # from the wheel still fails, while the minutes of compiling are not spent twice.
        compiled = Path(os.environ.get("CORTEXSNN_CACHE", root / "none")) / "kernels"
        if compiled.is_dir():
            shutil.copytree(compiled, root / "cache" / "kernels")
        data = _shared_data()
        self.data = data if data.is_dir() else None
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
        self.env.update(PATH=f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                        CORTEXSNN_CACHE=str(root / "cache"), MPLBACKEND="Agg",
                        # the IIR kernels' C++ extension is built once here (first IIR command), not in
                        # (and not against) the extension cache the other tests share
                        TORCH_EXTENSIONS_DIR=str(root / "torch_extensions"),
                        CORTEXSNN_DATA=str(self.data) if self.data else str(root / "no-data"))

    @staticmethod
    def _pip_env() -> dict:
        return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}

    def run(self, *args: str, label: str | None = None) -> subprocess.CompletedProcess:
        """``cortexsnn ARGS`` (or ``python ...`` when ``args[0] == "python"``) in the user's folder."""
        exe = [str(self.python), *args[1:]] if args[0] == "python" else [str(self.venv / "bin" / "cortexsnn"), *args]
        start = time.perf_counter()
        done = _run(exe, cwd=self.home, env=self.env)
        self.timings[label or " ".join(args)[:90]] = time.perf_counter() - start
        return done

    def needs_data(self, *parts: str) -> Path:
        if self.data is None or not self.data.joinpath(*parts).exists():
            pytest.skip(f"{Path(str(self.data or _shared_data())).joinpath(*parts)} is absent (set CORTEXSNN_DATA)")
        return self.data.joinpath(*parts)


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    install = UserInstall(tmp_path_factory.mktemp("user-install"))
    yield install
    total = sum(install.timings.values())
    lines = [f"{seconds:7.1f} s  {what}" for what, seconds in install.timings.items()]
    report = f"wheel smoke test: {total:.0f} s of steps\n" + "\n".join(lines) + "\n"
    (install.root / "timings.txt").write_text(report)
    print("\n" + report, file=sys.stderr)


# ----------------------------------------------------------------------------- the checks
def test_the_install_is_the_wheel_without_dev_extras(user):
    where = user.run("python", "-c", "import cortexsnn, json; print(json.dumps([cortexsnn.__file__, cortexsnn.__version__]))",
                     label="python -c 'import cortexsnn'")
    path, version = json.loads(where.stdout)
    assert Path(path).resolve().is_relative_to(user.venv.resolve()), f"cortexsnn imported from {path}, not the wheel"
    assert not Path(path).resolve().is_relative_to(REPO)
    probe = ("import importlib.util as u; print([m for m in ('pytest', 'spikingjelly', 'snntorch', 'norse', "
             "'rsatoolbox', 'h5py', 'pynwb', 'av', 'efficientnet_lite_pytorch') if u.find_spec(m)])")
    assert user.run("python", "-c", probe, label="python: dev-only modules absent").stdout.strip() == "[]"
    assert {"torch", "torchvision", "mlxtend", "omegaconf"} <= set(user.dists)
    files = user.run("python", "-c", "import cortexsnn.config as c; print(*c.shipped_configs())").stdout.split()
    assert "iir/snn_mlp_1.yaml" in files and "stdp/mozafari2018.yaml" in files, "configs missing from the wheel"
    assert user.wheel.name.startswith(f"cortexsnn-{version}-")
    licence = user.run("python", "-c", "from importlib.metadata import distribution as d; "
                                       "print(d('cortexsnn').metadata['License'])").stdout.strip()
    assert licence == "MIT"


def test_help_models_and_configs(user):
    assert "iir" in user.run("--help").stdout
    assert "cortexsnn" in user.run("--version").stdout
    assert "sew_resnet18" in user.run("models").stdout
    assert "efficientnet_lite0.imagenet" in user.run("models", "--pretrained").stdout
    assert "configs/iir/associative_memory.yaml" in user.run("configs").stdout


def test_readme_api_tour(user):
    """The README's Python block, with a checkpoint file at the name it loads."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## A short tour of the API\s+```python\n(.*?)```", readme, re.S)
    assert block, "the README's API tour block was not found"
    code = block.group(1)
    assert "checkpoint_max_test_acc.pth" in code
    user.run("python", "-c", "import torch; from cortexsnn.models import create_model; torch.save(create_model("
                             "'sew_resnet18', cnf='ADD', neuron='if', num_classes=1000).state_dict(), "
                             "'checkpoint_max_test_acc.pth')", label="(write the checkpoint the tour loads)")
    script = user.home / "tour.py"
    script.write_text(code)
    out = user.run("python", str(script), label="README: the API tour").stdout
    assert "sn1" in out or "block" in out or "layer" in out


def test_demo_iir(user):
    """``cortexsnn demo --iir``: the same command, with the training shrunk (the demo's fixed overrides
    extended: later overrides win) so that it takes seconds; the config comes from the package and
    the digits from the mlxtend subset."""
    code = textwrap.dedent("""
        import sys
        from cortexsnn.cli import demo
        from cortexsnn.cli.main import main
        demo.DEMO_OVERRIDES += ["data.train_limit=200", "data.val_size=50", "data.test_limit=100", "train.length=4",
                                "train.threads=2"]
        sys.exit(main(["demo", "--iir", "--no-progress", "--output-dir", "runs/demo_iir"]))
    """)
    done = user.run("python", "-c", code, label="cortexsnn demo --iir (shrunk)")
    assert "test accuracy" in done.stdout and "mlxtend" in done.stderr
    assert (user.home / "runs" / "demo_iir" / "checkpoint_best.pt").is_file()


def test_iir_train_test_and_memory(user):
    tiny = ["train.epochs=1", "train.length=4", "data.train_limit=200", "data.val_size=50", "data.test_limit=100",
            "train.progress=false", "train.threads=2"]
    data = ["--data-dir", str(user.data / "mnist")] if user.data and (user.data / "mnist").is_dir() else []
    user.run("iir", "train", "--config", "configs/iir/snn_mlp_1.yaml", *data, "--out", "runs/iir", *tiny)
    tested = user.run("iir", "test", "--checkpoint", "runs/iir/checkpoint_best.pt", *data, "--no-progress")
    assert "accuracy" in json.loads(tested.stdout[tested.stdout.index("{"):])
    memory = ["memory.size=30", "memory.hidden=[20,10,20]", "memory.repeats=4", "memory.dev_repeats=1",
              "memory.test_repeats=1", "memory.erase_size=5", "train.epochs=1", "train.batch_size=16",
              "train.progress=false", "train.threads=2"]
    done = user.run("iir", "memory", "--config", "configs/iir/associative_memory.yaml", "--out", "runs/memory", *memory)
    assert '"associative_memory"' in done.stdout


def test_train_and_resume(user):
    """``cortexsnn train --config configs/train/sew_resnet18_imagenet.yaml data.root=...`` on an image
    folder of 16 random 40-pixel images in 2 classes (train/ and val/), at 32 pixels and T = 1, one
    epoch; then ``--resume`` of the same run for a second epoch."""
    make = ("import numpy as np; from PIL import Image; from pathlib import Path; rng = np.random.default_rng(0)\n"
            "for split in ('train', 'val'):\n"
            "    for c in ('cat', 'dog'):\n"
            "        Path('images', split, c).mkdir(parents=True)\n"
            "        for i in range(4):\n"
            "            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(f'images/{split}/{c}/{i}.png')")
    user.run("python", "-c", make, label="(write an image folder)")
    tiny = ["data.root=images", "data.image_size=32", "data.val_resize=36", "data.workers=0", "model.T=1",
            "run.batch_size=4", "run.amp=false", "run.progress=false", "run.out_dir=runs/sew18", "run.device=cpu",
            "optim.warmup_epochs=0"]
    user.run("train", "--config", "configs/train/sew_resnet18_imagenet.yaml", *tiny, "run.epochs=1")
    user.run("train", "--config", "configs/train/sew_resnet18_imagenet.yaml", "--resume", *tiny, "run.epochs=2",
             label="cortexsnn train --resume")
    assert (user.home / "runs" / "sew18" / "metrics.csv").is_file()


def test_stdp_train_and_evaluate(user):
    """``cortexsnn stdp train --config configs/stdp/mozafari2018.yaml`` on the mlxtend subset (no
    --data-dir), shrunk, then ``stdp evaluate``."""
    tiny = ["--train-limit", "30", "--test-limit", "10", "--no-progress", "--no-tensorboard", "--threads", "2"]
    user.run("stdp", "train", "--config", "configs/stdp/mozafari2018.yaml", "--epochs", "1", "1", "1", "--mode", "batched",
             "--batch-size", "10", "--val-fraction", "0.3", "--activation-maps", "0", "--out", "runs/stdp", *tiny)
    assert json.loads((user.home / "runs" / "stdp" / "results.json").read_text())["metrics"]["n_samples"] == 10
    user.run("stdp", "evaluate", "--checkpoint", "runs/stdp/checkpoint_best.pt", "--activation-maps", "0", *tiny)
    assert json.loads((user.home / "runs" / "stdp" / "eval_test" / "metrics_test.json").read_text())["n_samples"] == 10


def test_demo_scores_a_checkpoint(user):
    """``cortexsnn demo --checkpoint sew_resnet18=sew18.pth --output-dir runs/demo``, on one model at
    32 pixels, two layers, the 92-image benchmarks, 100 bootstrap resamples."""
    data = user.needs_data("kriegeskorte92")
    user.run("python", "-c", "import torch; from cortexsnn.models import create_model; torch.manual_seed(0); "
                             "torch.save(create_model('sew_resnet18', num_classes=1000).state_dict(), 'sew18.pth')",
             label="(write sew18.pth)")
    user.run("demo", "--checkpoint", "sew_resnet18=sew18.pth", "--output-dir", "runs/demo", "--models", "sew_resnet18",
             "--data-dir", str(data.parent), "--benchmarks", "kriegeskorte92", "--no-download", "--image-size", "32",
             "--max-layers", "2", "--bootstrap", "100", "--splits", "2", "--quiet")
    assert (user.home / "runs" / "demo" / "report.html").is_file()
    record = json.loads((user.home / "runs" / "demo" / "results.json").read_text())
    assert "sew_resnet18" in json.dumps(record)


def test_demo_main_job_and_convert(user):
    """``cortexsnn demo`` (the ImageNet EfficientNet-Lite0 from its weights package and its spiking
    conversion) and ``cortexsnn convert --model efficientnet_lite0 --weights imagenet --evaluate-dir``,
    shrunk: 32-pixel images, T = 8, two layers."""
    data = user.needs_data("kriegeskorte92")
    user.run("demo", "--models", "efficientnet_lite0,efficientnet_lite0_snn", "--data-dir", str(data.parent),
             "--benchmarks", "kriegeskorte92", "--no-download", "--image-size", "32", "--conversion-steps", "8",
             "--max-layers", "2", "--bootstrap", "100", "--splits", "2", "--quiet", "--output-dir", "runs/demo_main",
             label="cortexsnn demo (main job, shrunk)")
    assert (user.home / "runs" / "demo_main" / "report.html").is_file()
    make = ("import sys, numpy as np; from PIL import Image; from pathlib import Path; rng = np.random.default_rng(0)\n"
            "for folder, n in (('my_images', 4), ('calibration', 8)):\n"
            "    Path(folder).mkdir()\n"
            "    for i in range(n):\n"
            "        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(f'{folder}/im{i}.png')")
    user.run("python", "-c", make, label="(write my_images/ and calibration/)")
    user.run("convert", "--model", "efficientnet_lite0", "--weights", "imagenet", "--evaluate-dir", "my_images",
             "--calibration-dir", "calibration", "--image-size", "32", "--steps", "8", "--out", "runs/convert")
    assert (user.home / "runs" / "convert" / "results.json").is_file()


def test_examples_on_the_installed_package(user):
    """Two of the examples/ scripts, tiny, with the installed package (tests/test_examples.py runs all of them)."""
    user.run("python", str(REPO / "examples" / "load_checkpoint.py"), "--out", "runs/example_ckpt",
             label="examples/load_checkpoint.py")
    user.run("python", str(REPO / "examples" / "stdp_mnist.py"), "--train-limit", "30", "--test-limit", "10",
             "--epochs", "1", "1", "1", label="examples/stdp_mnist.py (tiny)")
