"""Named brain benchmarks: stimuli, neural targets and their noise ceilings, ready to score.

A :class:`Benchmark` is one area of one species recorded on one stimulus set. It holds everything
a score needs, as data:

* the stimuli (:class:`StimulusSet`: images, ids, category labels);
* the target: an :class:`~cortexsnn.data.neural.RDMSet` with one RDM per subject (``descriptors``
  ``subject`` / ``area``; a single RDM when the data are one population, e.g. monkey IT);
* the noise ceiling (:class:`Ceiling`), computed once when the benchmark is loaded, stating what it
  is: the lower and upper bounds of a leave-one-subject-out ceiling (Nili et al., PLoS Comput Biol
  2014), or a split-half estimate with its spread; ``None`` when the data cannot give one;
* reference model RDMs shipped with the data (e.g. animacy, V1 model, HMAX for the 92 images),
  scored as reference points.

Registered benchmarks (:data:`BENCHMARKS`; the data folder of each under ``data_dir``):

==============================  =======  =====================================================
name                            species  data
==============================  =======  =====================================================
``kriegeskorte92.monkey_IT``    macaque  92 images, IT RDM of 674 neurons (Kriegeskorte et al.,
                                         Neuron 2008); no ceiling (one RDM)
``kriegeskorte92.human_IT``     human    92 images, IT fMRI RDMs of 4 subjects (2 sessions
                                         averaged each); leave-one-subject-out ceiling
``algonauts78.human_EVC``       human    78 images, EVC fMRI RDMs of 15 subjects (Algonauts
                                         2019, Cichy et al. 2019); leave-one-subject-out ceiling
``algonauts78.human_IT``        human    the same, IT
``allen2p.mouse_VISp``          mouse    118 natural scenes, 212 VISp cells (2-photon, Allen
                                         Brain Observatory, de Vries et al., Nat Neurosci 2020);
                                         split-half over cells, Spearman-Brown corrected
``majaj2015.macaque_V4`` / ``_IT`` macaque  3,200 images, V4 and IT sites (Majaj, Hong et al., J
                                         Neurosci 2015); the user brings the images
``macaque_face.macaque_AM``     macaque  face-patch AM (Chang et al. 2021); images brought
``allen_neuropixels.mouse_*``   mouse    Allen Neuropixels natural scenes, six areas (Huang et
                                         al.'s files); images brought
==============================  =======  =====================================================

The last three hold one population RDM per area, with a split-half ceiling over units; their
stimulus images go in the data set's folder as ``stimuli/`` (an image folder, in the responses'
order) or as Huang et al.'s ``stimulus_{dataset}_224.pt``. Only the 92-image files can be downloaded (from rsatoolbox's repository, SHA-256 checked); the
others are read from ``data_dir`` (``$CORTEXSNN_DATA`` by default) where the user put them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from cortexsnn.data.neural import RDMSet
from cortexsnn.errors import CortexSNNError

__all__ = [
    "BenchmarkDataCorrupt",
    "Benchmark",
    "BenchmarkDataMissing",
    "Ceiling",
    "StimulusSet",
    "BENCHMARKS",
    "list_benchmarks",
    "load_benchmarks",
    "load_dataset_benchmarks",
]

log = logging.getLogger(__name__)

#: Splits of the split-half ceilings (cells of a population) and their seed.
CEILING_SPLITS, CEILING_SEED = 100, 0


class BenchmarkDataMissing(CortexSNNError, FileNotFoundError):
    """The files of a benchmark are not in the data folder (and cannot be downloaded)."""


class BenchmarkDataCorrupt(CortexSNNError, ValueError):
    """A benchmark's file is present but damaged (a wrong checksum) and downloads are off."""


@dataclass(frozen=True)
class Ceiling:
    """A noise ceiling, as what it is.

    Attributes:
        kind: ``"leave-one-subject-out"`` (``lower``, ``upper``) or ``"split-half"`` (``estimate``
            with its ``spread``: the standard deviation of the split-half correlation over splits).
        denominator: what a normalised score divides by: the upper bound (the highest score the
            data allow a model on average; a normalised score of 1 means "as good as the subjects'
            mean RDM") or the split-half estimate.
        method: how it was computed, in words.
    """

    kind: str
    method: str
    lower: float | None = None
    upper: float | None = None
    estimate: float | None = None
    spread: float | None = None

    @property
    def denominator(self) -> float:
        value = self.upper if self.kind == "leave-one-subject-out" else self.estimate
        assert value is not None
        return float(value)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "lower": self.lower, "upper": self.upper, "estimate": self.estimate,
                "spread": self.spread, "denominator": self.denominator, "method": self.method}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Ceiling":
        return cls(d["kind"], d["method"], d.get("lower"), d.get("upper"), d.get("estimate"), d.get("spread"))


@dataclass(frozen=True)
class StimulusSet:
    """The stimuli of a benchmark: ``images`` (``[N, H, W]`` grey or ``[N, H, W, 3]`` uint8) or an image
    ``folder`` (natural name order), one id per stimulus, optional category labels."""

    name: str
    ids: list[str]
    description: str
    images: np.ndarray | None = None
    folder: Path | None = None
    categories: list[str] | None = None
    tensor_file: Path | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def stimuli(self, size: int | None, normalization: Any) -> Any:
        """The stimuli as a normalised :class:`~cortexsnn.data.stimuli.Stimuli` tensor, ids attached."""
        from dataclasses import replace

        from cortexsnn.data.stimuli import stimuli_from_array, stimuli_from_folder

        if self.images is not None:
            built = stimuli_from_array(self.images, size=size, normalization=normalization, source=self.description)
        elif self.folder is not None:
            built = stimuli_from_folder(self.folder, size=size, normalization=normalization, expected=len(self.ids))
        else:  # Huang et al.'s preprocessed tensor: used as stored (its size and normalisation are its own)
            from cortexsnn.data.stimuli import load_stimulus_tensor

            assert self.tensor_file is not None
            log.warning("%s: stimuli read as stored in %s (normalisation and size of the file, not the model's)",
                        self.name, self.tensor_file)
            built = load_stimulus_tensor(self.tensor_file, expected=len(self.ids))
        return replace(built, ids=list(self.ids))


@dataclass(frozen=True)
class Benchmark:
    """One area of one species on one stimulus set (see the module docstring)."""

    name: str
    species: str
    area: str
    dataset: str
    stimuli: StimulusSet
    target: RDMSet
    ceiling: Ceiling | None
    reference: str
    description: str
    reference_rdms: RDMSet | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.target.n_stimuli != len(self.stimuli):
            raise CortexSNNError(f"benchmark {self.name}: the target RDMs hold {self.target.n_stimuli} stimuli, the "
                                 f"stimulus set {len(self.stimuli)}")
        if self.target.stimulus_ids is not None and list(map(str, self.target.stimulus_ids)) != list(self.stimuli.ids):
            raise CortexSNNError(f"benchmark {self.name}: the target's stimulus ids differ from the stimulus set's")

    @property
    def n_subjects(self) -> int:
        return len(self.target)

    def describe(self) -> dict[str, Any]:
        """JSON-safe description (for results files)."""
        return {"name": self.name, "species": self.species, "area": self.area, "dataset": self.dataset,
                "stimulus_set": self.stimuli.name, "n_stimuli": len(self.stimuli), "n_subjects": self.n_subjects,
                "subjects": [str(s) for s in self.target.descriptors.get("subject", self.target.names)],
                "ceiling": None if self.ceiling is None else self.ceiling.to_dict(),
                "reference": self.reference, "description": self.description}


# ----------------------------------------------------------------------------- ceilings
def leave_one_subject_out(target: RDMSet) -> Ceiling:
    """Leave-one-subject-out bounds of RSA (Spearman) against a set of subjects' RDMs."""
    from .ceilings import rdm_set_ceiling

    lower, upper = rdm_set_ceiling(target.rdms, method="spearman")
    return Ceiling("leave-one-subject-out", f"leave-one-subject-out over {len(target)} subjects (Nili et al. 2014; "
                   "rsatoolbox's pooling, Spearman)", lower=lower, upper=upper)


def split_half_cells(responses: np.ndarray, n_splits: int = CEILING_SPLITS, seed: int = CEILING_SEED) -> Ceiling:
    """Split-half ceiling of a population RDM: the RDMs of two random halves of the cells compared
    (Spearman of correlation-distance RDMs), the mean over splits Spearman-Brown corrected to the
    whole population; ``spread`` is the standard deviation of the uncorrected values over splits."""
    from .ceilings import spearman_brown, split_half_neuron_ceiling

    mean, sem = split_half_neuron_ceiling(responses, n_splits=n_splits, random_state=seed, drop_first=False)
    n = responses.shape[1]
    return Ceiling("split-half", f"split-half over cells ({n_splits} random halves of {n}, seed {seed}), mean "
                   f"r = {mean:.4f}, Spearman-Brown corrected to all cells", estimate=float(spearman_brown(mean)),
                   spread=sem * float(np.sqrt(n_splits)))


# ----------------------------------------------------------------------------- loaders
def _k92(directory: Path, download: bool) -> dict[str, Benchmark]:
    from cortexsnn.data.neural import KRIEGESKORTE92_FILES, fetch_kriegeskorte92, load_kriegeskorte92

    missing = [n for n in KRIEGESKORTE92_FILES if not (directory / n).is_file()]
    if missing and not download:
        raise BenchmarkDataMissing(_missing_92(directory, missing, "downloads are off"))
    if not download:  # verify here: fetch_kriegeskorte92 would download a damaged file anew
        _verify_92(directory)
    elif missing:
        log.info("downloading the 92-image data into %s", directory)
    try:
        if download:
            fetch_kriegeskorte92(directory)  # verifies the SHA-256 of files already there, too
    except Exception as exc:  # network errors come from requests / urllib3 / pooch, of many types
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        missing = [n for n in KRIEGESKORTE92_FILES if not (directory / n).is_file()] or ["a file with the wrong checksum"]
        raise BenchmarkDataMissing(_missing_92(directory, missing, reason)) from exc
    k = load_kriegeskorte92(directory)
    ids = [f"object{i + 1:02d}" for i in range(len(k.images))]
    stim = StimulusSet("kriegeskorte92", ids, "kriegeskorte92: stimuli_92objs (175 x 175 px)", images=k.images,
                       categories=list(k.categories))
    ref = "Kriegeskorte et al., Neuron 2008"
    monkey = RDMSet(k.fig1["mIT_674neurons"][None], ["monkey IT (674 neurons)"], {"source": ref}, np.array(ids),
                    {"subject": ["monkey population"], "area": ["IT"]})
    human = k.brain.average_by("subject")
    human = RDMSet(human.rdms, [f"human IT, subject {s}" for s in human.descriptor("subject")], human.meta,
                   np.array(ids), human.descriptors)
    references = RDMSet(k.models.rdms, k.models.names, k.models.meta, np.array(ids))
    keep_refs = [i for i, n in enumerate(references.names) if n != "monkeyIT"]  # the target itself
    return {
        "kriegeskorte92.monkey_IT": Benchmark(
            "kriegeskorte92.monkey_IT", "macaque", "IT", "kriegeskorte92", stim, monkey, None, ref,
            "monkey IT, 674 neurons (one population RDM: no noise ceiling)", references.select(keep_refs)),
        "kriegeskorte92.human_IT": Benchmark(
            "kriegeskorte92.human_IT", "human", "IT", "kriegeskorte92", stim, human, leave_one_subject_out(human), ref,
            "human IT fMRI, 4 subjects (each the mean of 2 sessions)", references),
    }


def _verify_92(directory: Path) -> None:
    """Raise :class:`BenchmarkDataCorrupt` naming each 92-image file whose SHA-256 is wrong (no network)."""
    import hashlib

    from cortexsnn.data.neural import _RSATOOLBOX_RAW, KRIEGESKORTE92_FILES

    for name, (commit, sha256) in KRIEGESKORTE92_FILES.items():
        digest = hashlib.sha256()
        with (directory / name).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != sha256:
            raise BenchmarkDataCorrupt(
                f"{directory / name} is damaged (its SHA-256 is not {sha256}) and downloads are off: replace it "
                f"with {_RSATOOLBOX_RAW.format(commit=commit, name=name)}, or turn downloads on (download=True) to "
                "fetch it again")


def _missing_92(target: Path, missing: list[str], reason: str) -> str:
    from cortexsnn.data.neural import _RSATOOLBOX_RAW, KRIEGESKORTE92_FILES

    lines = [f"the 92-image data of Kriegeskorte et al. (2008) are missing from {target} ({', '.join(missing)}) and "
             f"could not be downloaded ({reason}).",
             f"Put these files in {target} (or set CORTEXSNN_DATA to a folder holding kriegeskorte92/):"]
    for name, (commit, sha256) in KRIEGESKORTE92_FILES.items():
        lines.append(f"  {name}  (sha256 {sha256})")
        lines.append(f"      from {_RSATOOLBOX_RAW.format(commit=commit, name=name)}")
    return "\n".join(lines)


def _algonauts78(directory: Path, download: bool) -> dict[str, Benchmark]:
    from cortexsnn.data.neural import load_algonauts78

    images = directory / "stimuli_data"
    brain = directory / "brain_data"
    for need in (images, brain / "fmri_EVC_RDMs.npz", brain / "fmri_IT_RDMs.npz"):
        if not need.exists():
            raise BenchmarkDataMissing(
                f"the Algonauts 2019 78-image data are missing from {directory} ({need.name} not found). Put "
                "brain_data/fmri_{EVC,IT}_RDMs.npz and stimuli_data/image_01..78.jpg there (Net2Brain's test "
                "data, or the Algonauts 2019 release).")
    out = {}
    ref = "Cichy et al., Algonauts 2019 (78 images), via Net2Brain"
    for roi in ("EVC", "IT"):
        target = load_algonauts78(directory, roi)  # type: ignore[arg-type]
        ids = [str(s) for s in target.stimulus_ids]  # type: ignore[union-attr]
        stim = StimulusSet("algonauts78", ids, f"algonauts78: {images}", folder=images)
        name = f"algonauts78.human_{roi}"
        out[name] = Benchmark(name, "human", roi, "algonauts78", stim, target, leave_one_subject_out(target), ref,
                              f"human {roi} fMRI, {len(target)} subjects")
    return out


def _allen2p(directory: Path, download: bool) -> dict[str, Benchmark]:
    from cortexsnn.data.neural import load_allen_2p_ns118
    from .rdm import rdm

    if not directory.is_dir() or not sorted(directory.glob("*ns118*.npz")):
        raise BenchmarkDataMissing(
            f"the Allen Brain Observatory 2-photon VISp data are missing from {directory} (no *ns118*.npz): put "
            "allen_VISp_exp511510667_ns118_mean_dff.npz there (responses [118, cells], images31 [118, 31, 31]).")
    data = load_allen_2p_ns118(directory)
    responses = np.asarray(data["VISp"], dtype=np.float64)
    ids = [f"scene{i:03d}" for i in range(responses.shape[0])]
    target = RDMSet(rdm(responses, "correlation").numpy()[None], [f"mouse VISp ({responses.shape[1]} cells)"],
                    {"source": data.meta["source"], "units": data.meta["units"]}, np.array(ids),
                    {"subject": ["Cux2-CreERT2 mouse, experiment 511510667"], "area": ["VISp"]})
    stim = StimulusSet("allen2p_ns118", ids, "allen_visp_2p_ns118: 118 natural scenes at 31 x 31 px (grey)",
                       images=np.asarray(data.stimuli))
    name = "allen2p.mouse_VISp"
    return {name: Benchmark(name, "mouse", "VISp", "allen_visp_2p_ns118", stim, target, split_half_cells(responses),
                            "Allen Brain Observatory (de Vries et al., Nat Neurosci 2020)",
                            f"mouse VISp, {responses.shape[1]} cells (2-photon, mean dF/F over 50 repeats)")}


def _user_stimuli(directory: Path, dataset: str, n: int, what: str) -> StimulusSet:
    """The stimuli of a data set whose images the user brings: ``stimuli/`` (an image folder, natural
    name order, ``n`` images) or Huang et al.'s ``stimulus_{dataset}_224.pt`` tensor."""
    from cortexsnn.data.stimuli import IMAGE_SUFFIXES, find_seed_stimulus_file

    folder = directory / "stimuli"
    if folder.is_dir():
        files = [f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        if len(files) != n:
            raise BenchmarkDataMissing(f"{folder} holds {len(files)} images; {what} has {n} stimuli")
        return StimulusSet(dataset, [f"{dataset}_{i:04d}" for i in range(n)], f"{dataset}: {folder}", folder=folder)
    tensor = find_seed_stimulus_file(directory, dataset)
    if tensor is not None:
        return StimulusSet(dataset, [f"{dataset}_{i:04d}" for i in range(n)], f"{dataset}: {tensor}", tensor_file=tensor)
    raise BenchmarkDataMissing(
        f"the stimulus images of {what} are missing: put the {n} images, in the responses' order (natural name "
        f"order), in {folder}/, or Huang et al.'s stimulus_{dataset}_224.pt in {directory}")


def _population(name: str, species: str, area: str, dataset: str, stim: StimulusSet, responses: np.ndarray,
                reference: str, source: str) -> Benchmark:
    from .rdm import rdm

    target = RDMSet(rdm(responses, "correlation").numpy()[None], [f"{species} {area} ({responses.shape[1]} units)"],
                    {"source": source}, np.array(stim.ids), {"subject": [f"{species} population"], "area": [area]})
    return Benchmark(name, species, area, dataset, stim, target, split_half_cells(responses), reference,
                     f"{species} {area}, {responses.shape[1]} units (one population RDM; split-half ceiling over units)")


def _majaj2015(directory: Path, download: bool) -> dict[str, Benchmark]:
    from cortexsnn.data.neural import load_macaque_synthetic

    if not (directory / "IT.npy").is_file() or not (directory / "V4.npy").is_file():
        raise BenchmarkDataMissing(f"the Majaj, Hong et al. (2015) responses are missing from {directory}: put "
                                   "IT.npy [3200, 168] and V4.npy [3200, 88] there")
    data = load_macaque_synthetic(directory)
    n = data.n_stimuli
    stim = _user_stimuli(directory, "macaque_synthetic", n, "Majaj, Hong et al. (2015)")
    ref = "Majaj, Hong et al., J Neurosci 2015"
    return {f"majaj2015.macaque_{a}": _population(f"majaj2015.macaque_{a}", "macaque", a, "majaj2015", stim,
                                                  np.asarray(data[a], dtype=np.float64), ref, str(directory))
            for a in ("V4", "IT")}


def _allen_neuropixels(directory: Path, download: bool) -> dict[str, Benchmark]:
    from cortexsnn.data.neural import ALLEN_AREAS, load_allen_natural_scenes

    if not directory.is_dir() or not sorted(directory.glob("VISp_*.npy")):
        raise BenchmarkDataMissing(f"the Allen Neuropixels natural-scene responses are missing from {directory}: put "
                                   "Huang et al.'s {area}_25.npy and shr_{area}.npy files there")
    data = load_allen_natural_scenes(directory)
    stim = _user_stimuli(directory, "allen_natural_scenes", data.n_stimuli, "the Allen natural scenes")
    ref = "Allen Brain Observatory Neuropixels (Siegle et al., Nature 2021)"
    return {f"allen_neuropixels.mouse_{a}": _population(f"allen_neuropixels.mouse_{a}", "mouse", a,
                                                        "allen_natural_scenes", stim,
                                                        np.asarray(data[a], dtype=np.float64), ref, str(directory))
            for a in ALLEN_AREAS if a in data.areas}


def _macaque_face(directory: Path, download: bool) -> dict[str, Benchmark]:
    from cortexsnn.data.neural import load_macaque_face

    if not (directory / "AM.npy").is_file():
        raise BenchmarkDataMissing(f"the macaque face-patch responses (Chang et al. 2021) are missing from {directory}: "
                                   "put AM.npy and noise_ceiling.npy there")
    data = load_macaque_face(directory)
    stim = _user_stimuli(directory, "macaque_face", data.n_stimuli, "the macaque face set")
    return {"macaque_face.macaque_AM": _population("macaque_face.macaque_AM", "macaque", "AM", "macaque_face", stim,
                                                   np.asarray(data["AM"], dtype=np.float64),
                                                   "Chang et al., Nat Commun 2021", str(directory))}


#: benchmark name -> (data folder under the data directory, loader of that folder's benchmarks)
BENCHMARKS: dict[str, tuple[str, Callable[[Path, bool], dict[str, Benchmark]]]] = {
    "kriegeskorte92.monkey_IT": ("kriegeskorte92", _k92),
    "kriegeskorte92.human_IT": ("kriegeskorte92", _k92),
    "algonauts78.human_EVC": ("algonauts78", _algonauts78),
    "algonauts78.human_IT": ("algonauts78", _algonauts78),
    "allen2p.mouse_VISp": ("allen_visp_2p_ns118", _allen2p),
    # the data sets of Huang et al. (AAAI 2023) that users bring, with their stimulus images
    "majaj2015.macaque_V4": ("majaj2015", _majaj2015),
    "majaj2015.macaque_IT": ("majaj2015", _majaj2015),
    "macaque_face.macaque_AM": ("macaque_face", _macaque_face),
    **{f"allen_neuropixels.mouse_{a}": ("allen_natural_scenes", _allen_neuropixels)
       for a in ("VISp", "VISl", "VISrl", "VISal", "VISpm", "VISam")},
}


def list_benchmarks() -> list[str]:
    """The registered benchmark names."""
    return list(BENCHMARKS)


def load_benchmarks(names: Sequence[str] | None = None, data_dir: str | Path | None = None, *,
                    download: bool = True, skip_missing: bool = False) -> tuple[list[Benchmark], dict[str, str]]:
    """Load benchmarks by name (default: all registered).

    Args:
        names: registered names (see :func:`list_benchmarks`); a folder prefix (``"algonauts78"``)
            selects every benchmark of that folder.
        data_dir: the folder holding each data set's folder (default ``$CORTEXSNN_DATA``, else
            ``~/.cache/cortexsnn/data``).
        download: fetch missing files that can be downloaded (the 92 images).
        skip_missing: leave out benchmarks whose files are missing instead of raising.

    Returns:
        ``(benchmarks, skipped)``: ``skipped`` maps a left-out benchmark to the reason.
    """
    from cortexsnn.data.paths import data_dir as default_data_dir

    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    wanted = _resolve(names)
    loaded: dict[str, Benchmark] = {}
    skipped: dict[str, str] = {}
    for folder, loader in dict.fromkeys(BENCHMARKS[n] for n in wanted):
        try:
            loaded.update(loader(root / folder, download))
        except BenchmarkDataMissing as exc:
            if not skip_missing:
                raise
            for n in wanted:
                if BENCHMARKS[n][0] == folder:
                    skipped[n] = str(exc)
            log.warning("skipped %s: %s", folder, str(exc).splitlines()[0])
    return [loaded[n] for n in wanted if n in loaded], skipped


def load_dataset_benchmarks(dataset: str, directory: str | Path, *, download: bool = False) -> dict[str, Benchmark]:
    """Every benchmark of one data set's folder (``"kriegeskorte92"``, ``"algonauts78"``,
    ``"allen_visp_2p_ns118"``), read from ``directory`` (that folder itself)."""
    loaders = {folder: loader for folder, loader in BENCHMARKS.values()}
    if dataset not in loaders:
        raise CortexSNNError(f"no benchmarks for data set {dataset!r}; data sets: {', '.join(loaders)}")
    return loaders[dataset](Path(directory).expanduser(), download)


def _resolve(names: Sequence[str] | None) -> list[str]:
    if names is None:
        return list(BENCHMARKS)
    out: list[str] = []
    for n in names:
        matched = [b for b in BENCHMARKS if b == n or b.split(".")[0] == n]
        if not matched:
            raise CortexSNNError(f"unknown benchmark {n!r}; registered: {', '.join(BENCHMARKS)} (or a data set "
                                 f"prefix: {', '.join(sorted({b.split('.')[0] for b in BENCHMARKS}))})")
        out += [m for m in matched if m not in out]
    if not out:
        raise CortexSNNError("no benchmark named")
    return out
