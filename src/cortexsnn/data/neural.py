"""Neural recordings and RDM sets: one container for each, a format-neutral NPZ, and readers.

Two containers:

* :class:`NeuralData` - responses of one or more brain areas to the *same ordered* stimuli,
  ``area -> [stimuli, neurons]`` (or ``[trials, stimuli, neurons]``), with stimulus / neuron ids,
  optional stimulus images and a ``meta`` dict that records the source and every preprocessing step.
  ``data[area]`` is the float64 ``[stimuli, neurons]`` matrix the similarity metrics take.
* :class:`RDMSet` - a stack of representational dissimilarity matrices of the same stimuli
  (subjects, sessions, models), square, symmetric, zero diagonal, float64.

Formats:

* :func:`save_npz` / :func:`load_npz` - the documented way in for your own recordings: one ``.npz``
  with ``responses/<area>`` arrays (``[stimuli, neurons]`` or ``[trials, stimuli, neurons]``), optional
  ``stimulus_ids``, ``neuron_ids/<area>``, ``stimuli`` (images) and ``meta`` (a JSON string). A file
  with a single ``responses`` array is one area (named by an ``area`` string or ``"area"``). Read
  with ``allow_pickle=False``: no code in a data file is ever run. :func:`save_hdf5` /
  :func:`load_hdf5` use the same layout in HDF5 (``h5py``); :func:`load_nwb` reads Neurodata
  Without Borders files (spike times or a continuous signal, cut by a stimulus-presentation
  table); :func:`load_recording` picks by suffix.
* :func:`load_rdm_npz` - a stack ``[subjects, n, n]`` in an ``.npz`` (Net2Brain's layout).
* Huang et al.'s preprocessed layouts (users bring the files; filters exactly as Huang et al.):
  :func:`load_allen_natural_scenes`, :func:`load_allen_natural_movie`, :func:`load_macaque_face`,
  :func:`load_macaque_synthetic`; :func:`load_neural_dataset` picks one by Huang et al.'s dataset name.
* Public sets gathered for validation: :func:`load_kriegeskorte92` (RDMs of the 92-image set),
  :func:`load_algonauts78` (15 subjects' fMRI RDMs of EVC / IT), :func:`load_allen_2p_ns118`
  (mouse VISp 2-photon, 118 natural scenes), and the Majaj et al. 2015 V4 / IT responses through
  :func:`load_macaque_synthetic`.
"""
from __future__ import annotations

import json
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import torch

from cortexsnn.errors import CortexSNNError
from cortexsnn.utils.io import atomic_write

__all__ = [
    "NeuralDataError",
    "NeuralData",
    "RDMSet",
    "save_npz",
    "load_npz",
    "save_hdf5",
    "load_hdf5",
    "load_recording",
    "load_nwb",
    "load_rdm_npz",
    "split_half_reliability",
    "load_allen_natural_scenes",
    "load_allen_natural_movie",
    "load_macaque_face",
    "load_macaque_synthetic",
    "load_neural_dataset",
    "pool_allen_units",
    "load_kriegeskorte92",
    "fetch_kriegeskorte92",
    "load_algonauts78",
    "load_allen_2p_ns118",
    "ALLEN_AREAS",
    "NEURAL_DATASETS",
    "KRIEGESKORTE92_FILES",
    "Kriegeskorte92",
]

#: The six mouse visual areas of the Allen Brain Observatory sets, in Huang et al.'s order.
ALLEN_AREAS = ("VISp", "VISl", "VISrl", "VISal", "VISpm", "VISam")

#: Allen natural movies: name -> (frames, duration in s, trials summed in Huang et al.'s files).
_MOVIES = {"one": (900, 30.0, 20), "three": (3600, 120.0, 10)}


class NeuralDataError(CortexSNNError, ValueError):
    """Neural responses or RDMs that cannot be used (wrong shape or dtype, NaN, an unreadable file)."""


# ----------------------------------------------------------------------------- containers
@dataclass(frozen=True)
class NeuralData:
    """Responses of brain areas to the same ordered stimuli.

    Attributes:
        responses: ``area -> [stimuli, neurons]`` or ``[trials, stimuli, neurons]`` arrays.
        stimulus_ids: ``[stimuli]`` ids (ints or strings), in response-row order.
        neuron_ids: ``area -> [neurons]`` ids (default: column indices in the source file).
        meta: provenance - ``source``, ``species``, ``units`` and ``preprocessing`` (a list of the
            steps applied, in order), plus anything the reader knows.
        stimuli: optional stimulus images ``[stimuli, ...]`` in the same order.
    """

    responses: dict[str, np.ndarray]
    stimulus_ids: np.ndarray
    neuron_ids: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    stimuli: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.responses:
            raise NeuralDataError("NeuralData needs at least one area's responses")
        # accept torch tensors and sequences; store numpy arrays (frozen: set through object)
        object.__setattr__(self, "responses", {a: _to_numpy(r) for a, r in self.responses.items()})
        object.__setattr__(self, "stimulus_ids", _to_numpy(self.stimulus_ids))
        object.__setattr__(self, "neuron_ids", {a: _to_numpy(v) for a, v in self.neuron_ids.items()})
        object.__setattr__(self, "meta", dict(self.meta))
        if self.stimuli is not None:
            object.__setattr__(self, "stimuli", _to_numpy(self.stimuli))
        n = len(self.stimulus_ids)
        for area, r in self.responses.items():
            if not isinstance(area, str) or not area or "/" in area:
                raise NeuralDataError(f"area names must be non-empty strings without '/', got {area!r}")
            if r.ndim not in (2, 3):
                raise NeuralDataError(
                    f"responses of {area!r} must be [stimuli, neurons] or [trials, stimuli, neurons], "
                    f"got shape {r.shape}; store a single neuron's responses as [stimuli, 1]"
                )
            rows = r.shape[-2]
            if rows != n:
                raise NeuralDataError(
                    f"responses of {area!r} have {rows} stimuli but there are {n} stimulus ids; every "
                    "area must hold the same stimuli in the same order"
                )
            if not np.issubdtype(r.dtype, np.number) or np.issubdtype(r.dtype, np.complexfloating):
                raise NeuralDataError(f"responses of {area!r} must be real numbers, got dtype {r.dtype}")
            if not np.isfinite(r).all():
                bad = np.flatnonzero(~np.isfinite(r).reshape(-1, r.shape[-1]).all(axis=0))
                raise NeuralDataError(
                    f"responses of {area!r} hold NaN or infinite values (neurons {bad[:10].tolist()}); "
                    "drop or impute them before building NeuralData"
                )
            ids = self.neuron_ids.get(area)
            if ids is not None and len(ids) != r.shape[-1]:
                raise NeuralDataError(f"{area!r}: {len(ids)} neuron ids for {r.shape[-1]} neurons")
        for area in self.neuron_ids:
            if area not in self.responses:
                raise NeuralDataError(f"neuron ids given for unknown area {area!r}")
        if self.stimuli is not None and len(self.stimuli) != n:
            raise NeuralDataError(f"{len(self.stimuli)} stimulus images for {n} stimuli")

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a}: {tuple(r.shape)}" for a, r in self.responses.items())
        name = self.meta.get("dataset") or self.meta.get("source") or "unnamed"
        return f"NeuralData({name!s}; {self.n_stimuli} stimuli; {shapes})"

    def summary(self) -> str:
        """A few lines for logs and reports: dataset, areas, neurons, and the preprocessing steps."""
        lines = [repr(self)]
        lines += [f"  {a}: {self.n_neurons(a)} neurons" + (f", {r.shape[0]} trials" if r.ndim == 3 else "")
                  for a, r in self.responses.items()]
        lines += [f"  - {step}" for step in self.meta.get("preprocessing", [])]
        return "\n".join(lines)

    @property
    def areas(self) -> list[str]:
        """Area names, in insertion order."""
        return list(self.responses)

    @property
    def n_stimuli(self) -> int:
        return len(self.stimulus_ids)

    def n_neurons(self, area: str) -> int:
        return self._area(area).shape[-1]

    def __getitem__(self, area: str) -> np.ndarray:
        """``[stimuli, neurons]`` float64 responses of ``area`` (averaged over trials if it has them)."""
        r = self._area(area)
        return (r.mean(axis=0) if r.ndim == 3 else r).astype(np.float64, copy=False)

    def tensor(self, area: str, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
        """``data[area]`` as a torch tensor."""
        return torch.as_tensor(self[area], dtype=dtype, device=device)

    def trials(self, area: str) -> np.ndarray:
        """``[trials, stimuli, neurons]`` of ``area``; raises if only trial averages were stored."""
        r = self._area(area)
        if r.ndim != 3:
            raise ValueError(f"{area!r} holds trial-averaged responses only (shape {r.shape})")
        return r

    def constant_neurons(self, area: str) -> np.ndarray:
        """Indices of neurons whose (trial-averaged) response is the same for every stimulus.

        Such a neuron has no defined correlation with anything: drop it before regression scores.
        """
        r = self[area]
        return np.flatnonzero(np.ptp(r, axis=0) == 0)

    def select_neurons(self, area: str, keep: np.ndarray | Sequence[int] | Sequence[bool], reason: str) -> "NeuralData":
        """A copy keeping the neurons ``keep`` (indices or a boolean mask) of ``area``; ``reason``
        is appended to ``meta["preprocessing"]``."""
        r = self._area(area)
        idx = _as_index(keep, r.shape[-1], f"neurons of {area!r}")
        responses = dict(self.responses)
        responses[area] = r[..., idx]
        neuron_ids = dict(self.neuron_ids)
        neuron_ids[area] = self._neuron_ids(area)[idx]
        return replace(self, responses=responses, neuron_ids=neuron_ids,
                       meta=_with_step(self.meta, f"{area}: {reason} ({len(idx)} of {r.shape[-1]} neurons kept)"))

    def select_stimuli(self, keep: np.ndarray | Sequence[int] | Sequence[bool], reason: str) -> "NeuralData":
        """A copy keeping the stimuli ``keep`` (indices or a boolean mask), in that order."""
        idx = _as_index(keep, self.n_stimuli, "stimuli")
        responses = {a: r[..., idx, :] for a, r in self.responses.items()}
        stimuli = None if self.stimuli is None else self.stimuli[idx]
        return replace(self, responses=responses, stimulus_ids=self.stimulus_ids[idx], stimuli=stimuli,
                       meta=_with_step(self.meta, f"{reason} ({len(idx)} of {self.n_stimuli} stimuli kept)"))

    def reliable_neurons(self, area: str, threshold: float, *, n_splits: int = 100, random_state: int = 0) -> "NeuralData":
        """A copy keeping the neurons of ``area`` whose :func:`split_half_reliability` (from its
        trials) is ``>= threshold``; neurons with an undefined reliability are dropped."""
        rel = split_half_reliability(self.trials(area), n_splits=n_splits, random_state=random_state)
        keep = np.flatnonzero(rel >= threshold)
        return self.select_neurons(area, keep, f"split-half reliability >= {threshold} "
                                               f"({n_splits} splits, random_state {random_state})")

    def to_rsatoolbox(self, area: str) -> Any:
        """``area``'s trial-averaged responses as an ``rsatoolbox.data.Dataset`` (observations =
        stimuli with descriptor ``"stimulus"``, channels = neurons with descriptor ``"neuron"``)."""
        from rsatoolbox.data import Dataset

        return Dataset(
            self[area],
            descriptors={"area": area},
            obs_descriptors={"stimulus": np.asarray(self.stimulus_ids)},
            channel_descriptors={"neuron": self._neuron_ids(area)},
        )

    def _area(self, area: str) -> np.ndarray:
        if area not in self.responses:
            raise KeyError(f"no area {area!r}; this data holds {self.areas}")
        return self.responses[area]

    def _neuron_ids(self, area: str) -> np.ndarray:
        ids = self.neuron_ids.get(area)
        return np.arange(self._area(area).shape[-1]) if ids is None else np.asarray(ids)


def split_half_reliability(
    trials: Any, *, n_splits: int = 100, random_state: int = 0, spearman_brown: bool = True
) -> np.ndarray:
    """Per-neuron split-half reliability of ``[trials, stimuli, neurons]`` responses.

    Each split permutes the trials (``numpy.random.default_rng(random_state)``), averages the first
    ``trials // 2`` and the rest, and correlates the two halves' responses over stimuli (Pearson,
    per neuron); with ``spearman_brown`` each r becomes ``2 r / (1 + r)`` (the reliability of all the
    trials); the result is the mean over splits. A neuron whose half-average is constant over the
    stimuli in some split gets ``NaN`` (undefined; it fails any threshold). This is a standard
    estimator; Huang et al. shipped their ``shr`` values precomputed without saying how.
    """
    t = np.asarray(trials.detach().cpu() if isinstance(trials, torch.Tensor) else trials, dtype=np.float64)
    if t.ndim != 3:
        raise ValueError(f"trials must be [trials, stimuli, neurons], got shape {t.shape}")
    k = t.shape[0]
    if k < 2 or t.shape[1] < 3:
        raise ValueError(f"split-half reliability needs >= 2 trials and >= 3 stimuli, got shape {t.shape}")
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    if not np.isfinite(t).all():
        raise ValueError("trials hold NaN or infinite values")
    rng = np.random.default_rng(random_state)
    total = np.zeros(t.shape[2])
    with np.errstate(invalid="ignore", divide="ignore"):
        for _ in range(n_splits):
            perm = rng.permutation(k)
            a = t[perm[: k // 2]].mean(axis=0)
            b = t[perm[k // 2:]].mean(axis=0)
            a -= a.mean(axis=0)
            b -= b.mean(axis=0)
            denom = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
            r = np.where(denom > 0, (a * b).sum(axis=0) / np.where(denom > 0, denom, 1.0), np.nan)
            total += 2 * r / (1 + r) if spearman_brown else r
    return total / n_splits


@dataclass(frozen=True)
class RDMSet:
    """A stack of RDMs of the same stimuli: ``rdms`` ``[sets, n, n]`` float64 with ``names``.

    As rsatoolbox's ``RDMs``, a set carries what each RDM is as data: ``descriptors`` maps a
    descriptor (``"subject"``, ``"session"``, ``"area"``, ...) to one value per RDM, and
    ``stimulus_ids`` names the stimuli (rows). Code that needs a subject or a session reads the
    descriptor; it never parses ``names``, which are labels for people.
    """

    rdms: np.ndarray
    names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    stimulus_ids: np.ndarray | None = None
    descriptors: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rdms", _to_numpy(self.rdms).astype(np.float64, copy=False))
        object.__setattr__(self, "names", [str(n) for n in self.names])
        if self.stimulus_ids is not None:
            object.__setattr__(self, "stimulus_ids", _to_numpy(self.stimulus_ids))
        r = self.rdms
        if r.ndim != 3 or r.shape[1] != r.shape[2]:
            raise NeuralDataError(f"an RDM set must be [sets, n, n], got shape {r.shape}")
        if len(self.names) != r.shape[0]:
            raise NeuralDataError(f"{len(self.names)} names for {r.shape[0]} RDMs")
        if not np.isfinite(r).all():
            raise NeuralDataError("the RDMs hold NaN or infinite dissimilarities")
        scale = max(float(np.abs(r).max()), 1e-300)
        asym = float(np.abs(r - r.transpose(0, 2, 1)).max())
        if asym > 1e-6 * scale:
            raise NeuralDataError(f"RDMs must be symmetric (largest |d_ij - d_ji| = {asym:.3g})")
        diag = float(np.abs(np.diagonal(r, axis1=1, axis2=2)).max())
        if diag > 1e-6 * scale:
            raise NeuralDataError(f"RDMs must have a zero diagonal (largest |d_ii| = {diag:.3g})")
        if self.stimulus_ids is not None and len(self.stimulus_ids) != r.shape[1]:
            raise NeuralDataError(f"{len(self.stimulus_ids)} stimulus ids for {r.shape[1]} stimuli")
        object.__setattr__(self, "descriptors", {str(k): list(v) for k, v in self.descriptors.items()})
        for key, values in self.descriptors.items():
            if len(values) != r.shape[0]:
                raise NeuralDataError(f"descriptor {key!r} has {len(values)} values for {r.shape[0]} RDMs")

    def __repr__(self) -> str:
        shown = self.names[:3] + (["..."] if len(self.names) > 3 else [])
        return f"RDMSet({len(self)} RDMs of {self.n_stimuli} stimuli: {shown})"

    @classmethod
    def from_matrices(cls, matrices: Iterable[Any], names: Sequence[str], meta: dict[str, Any] | None = None,
                      stimulus_ids: np.ndarray | None = None,
                      descriptors: dict[str, Sequence[Any]] | None = None) -> "RDMSet":
        """Build from square matrices or condensed upper triangles (scipy / MATLAB ``squareform``
        order), any real dtype; stored as float64."""
        return cls(np.stack([_square(np.asarray(m)) for m in matrices]), list(names), dict(meta or {}), stimulus_ids,
                   {k: list(v) for k, v in (descriptors or {}).items()})

    def descriptor(self, key: str) -> list[Any]:
        """The values of descriptor ``key``, one per RDM (a clear error when the set lacks it)."""
        if key not in self.descriptors:
            raise KeyError(f"the RDM set has no descriptor {key!r}; it has {sorted(self.descriptors) or 'none'} "
                           "(give descriptors={...} when building it)")
        return self.descriptors[key]

    def average_by(self, key: str) -> "RDMSet":
        """One RDM per value of descriptor ``key`` (first-seen order): the mean of the RDMs that share
        it, e.g. ``average_by("subject")`` averages each subject's sessions. Descriptors constant
        within a group are kept; the others are dropped."""
        values = self.descriptor(key)
        groups = list(dict.fromkeys(values))
        members = [[i for i, v in enumerate(values) if v == g] for g in groups]
        kept = {k: [vals[m[0]] for m in members] for k, vals in self.descriptors.items()
                if all(len({repr(vals[i]) for i in m}) == 1 for m in members)}
        rdms = np.stack([self.rdms[m].mean(axis=0) for m in members])
        names = [f"{key} {g} (mean of {len(m)})" for g, m in zip(groups, members)]
        return RDMSet(rdms, names, dict(self.meta), self.stimulus_ids, kept)

    @property
    def n_stimuli(self) -> int:
        return self.rdms.shape[1]

    def __len__(self) -> int:
        return self.rdms.shape[0]

    def __getitem__(self, key: int | str) -> np.ndarray:
        """One ``[n, n]`` RDM by position or name."""
        if isinstance(key, str):
            if key not in self.names:
                raise KeyError(f"no RDM named {key!r}; names: {self.names}")
            key = self.names.index(key)
        return self.rdms[key]

    def condensed(self) -> np.ndarray:
        """``[sets, n (n - 1) / 2]`` strict upper triangles, row by row (scipy's order)."""
        i, j = np.triu_indices(self.n_stimuli, k=1)
        return self.rdms[:, i, j]

    def to_rsatoolbox(self, dissimilarity_measure: str | None = None) -> Any:
        """The set as ``rsatoolbox.rdm.RDMs`` (``rdm_descriptors["name"]``, and
        ``pattern_descriptors["stimulus"]`` when stimulus ids are known)."""
        from rsatoolbox.rdm import RDMs

        patterns = None if self.stimulus_ids is None else {"stimulus": np.asarray(self.stimulus_ids)}
        measure = dissimilarity_measure or self.meta.get("dissimilarity_measure")
        return RDMs(self.condensed(), dissimilarity_measure=measure,
                    rdm_descriptors={"name": list(self.names), **self.descriptors}, pattern_descriptors=patterns)

    @classmethod
    def from_rsatoolbox(cls, rdms: Any, name_descriptor: str = "name") -> "RDMSet":
        """From ``rsatoolbox.rdm.RDMs`` (names from ``rdm_descriptors[name_descriptor]`` if present)."""
        matrices = rdms.get_matrices()
        names = rdms.rdm_descriptors.get(name_descriptor)
        names = [str(n) for n in names] if names is not None else [f"rdm {i}" for i in range(len(matrices))]
        meta = {"dissimilarity_measure": rdms.dissimilarity_measure}
        stim = rdms.pattern_descriptors.get("stimulus")
        return cls(np.asarray(matrices, dtype=np.float64), names, meta, None if stim is None else np.asarray(stim))

    def select(self, keys: Sequence[int | str]) -> "RDMSet":
        idx = [self.names.index(k) if isinstance(k, str) else int(k) for k in keys]
        return replace(self, rdms=self.rdms[idx], names=[self.names[i] for i in idx],
                       descriptors={k: [v[i] for i in idx] for k, v in self.descriptors.items()})


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _square(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.ndim == 2 and 1 in m.shape and m.shape != (1, 1):
        m = m.ravel()
    if m.ndim == 1:
        n = int(round((1 + np.sqrt(1 + 8 * m.size)) / 2))
        if n * (n - 1) // 2 != m.size:
            raise ValueError(f"{m.size} values are not the upper triangle of a square RDM")
        out = np.zeros((n, n))
        i, j = np.triu_indices(n, k=1)
        out[i, j] = m
        out[j, i] = m
        return out
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"an RDM must be square or condensed, got shape {m.shape}")
    return m


def _as_index(keep: Any, size: int, what: str) -> np.ndarray:
    k = np.asarray(keep)
    if k.dtype == bool:
        if k.shape != (size,):
            raise ValueError(f"a boolean mask over {what} must have length {size}, got shape {k.shape}")
        return np.flatnonzero(k)
    k = k.astype(np.int64).ravel()
    if k.size and (k.min() < -size or k.max() >= size):
        raise IndexError(f"indices out of range for {size} {what}")
    return k


def _with_step(meta: dict[str, Any], step: str) -> dict[str, Any]:
    out = dict(meta)
    out["preprocessing"] = [*meta.get("preprocessing", []), step]
    return out


# ----------------------------------------------------------------------------- generic NPZ
def save_npz(data: NeuralData, path: str | Path) -> Path:
    """Write ``data`` in the generic NPZ format (atomically; uncompressed for fast loading)."""
    arrays: dict[str, np.ndarray] = {f"responses/{a}": r for a, r in data.responses.items()}
    arrays["stimulus_ids"] = np.asarray(data.stimulus_ids)
    for area in data.areas:
        arrays[f"neuron_ids/{area}"] = data._neuron_ids(area)
    if data.stimuli is not None:
        arrays["stimuli"] = np.asarray(data.stimuli)
    arrays["meta"] = np.array(json.dumps(data.meta, default=_json_default))
    for name, a in arrays.items():
        if a.dtype == object:
            raise ValueError(f"{name} has dtype object, which NPZ cannot store without pickling")
    path = Path(path)
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"meta value {value!r} is not JSON-serialisable")


def load_npz(path: str | Path, *, areas: Sequence[str] | None = None) -> NeuralData:
    """Read the generic NPZ format (see the module docstring); ``areas`` picks a subset."""
    path = _existing(path)
    with _reading(path, "an NPZ file (numpy.savez)"):
        with np.load(path, allow_pickle=False) as f:
            files = set(f.files)
            responses = {k.split("/", 1)[1]: f[k] for k in f.files if k.startswith("responses/")}
            if "responses" in files:
                if responses:
                    raise NeuralDataError(f"{path} has both 'responses' and 'responses/<area>' arrays")
                area = str(f["area"]) if "area" in files else "area"
                responses = {area: f["responses"]}
            if not responses:
                raise NeuralDataError(
                    f"{path} holds no responses: expected 'responses' or 'responses/<area>' arrays "
                    f"(found {sorted(files)})"
                )
            if areas is not None:
                missing = [a for a in areas if a not in responses]
                if missing:
                    raise KeyError(f"{path} has no areas {missing}; it holds {list(responses)}")
                responses = {a: responses[a] for a in areas}
            n = _n_stimuli(responses, path)
            stimulus_ids = f["stimulus_ids"] if "stimulus_ids" in files else np.arange(n)
            neuron_ids = {a: f[f"neuron_ids/{a}"] for a in responses if f"neuron_ids/{a}" in files}
            stimuli = f["stimuli"] if "stimuli" in files else None
            meta = json.loads(str(f["meta"])) if "meta" in files else {}
        meta.setdefault("source", str(path))
        return NeuralData(responses, stimulus_ids, neuron_ids, meta, stimuli)


@contextmanager
def _reading(path: Path, what: str):
    """Errors of reading ``path`` (damaged file, unusable arrays) as one :class:`NeuralDataError` naming it."""
    try:
        yield
    except NeuralDataError as exc:
        if str(path) in str(exc):
            raise
        raise NeuralDataError(f"{path}: {exc}") from exc
    except (KeyError, ImportError, FileNotFoundError):
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        lines = str(exc).strip().splitlines()
        detail = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
        raise NeuralDataError(
            f"{path} cannot be read as {what} ({detail}); it is empty, truncated, not of that format, or holds "
            "object arrays (refused: they would need unpickling). Write it again with numeric arrays."
        ) from exc


def _n_stimuli(responses: dict[str, Any], path: Path) -> int:
    """The stimulus count of a file's first responses array, after checking every array is 2-D or 3-D."""
    for area, r in responses.items():
        if r.ndim not in (2, 3):
            raise NeuralDataError(
                f"{path}: responses of {area!r} have shape {tuple(r.shape)}; they must be [stimuli, neurons] or "
                "[trials, stimuli, neurons] (store a single neuron's responses as [stimuli, 1])"
            )
    return next(iter(responses.values())).shape[-2]


def save_hdf5(data: NeuralData, path: str | Path) -> Path:
    """Write ``data`` to HDF5 with the layout of the NPZ format: datasets ``/responses/<area>``,
    ``/stimulus_ids``, ``/neuron_ids/<area>``, ``/stimuli`` and a root attribute ``meta`` (JSON).
    Needs ``h5py``."""
    h5py = _h5py()
    path = Path(path)
    with atomic_write(path, "w+b") as handle, h5py.File(handle, "w") as f:
        for area, r in data.responses.items():
            f.create_dataset(f"responses/{area}", data=r)
            f.create_dataset(f"neuron_ids/{area}", data=_h5_safe(data._neuron_ids(area)))
        f.create_dataset("stimulus_ids", data=_h5_safe(np.asarray(data.stimulus_ids)))
        if data.stimuli is not None:
            f.create_dataset("stimuli", data=np.asarray(data.stimuli))
        f.attrs["meta"] = json.dumps(data.meta, default=_json_default)
    return path


def load_hdf5(path: str | Path, *, areas: Sequence[str] | None = None) -> NeuralData:
    """Read the HDF5 layout written by :func:`save_hdf5` (``/responses/<area>`` at least)."""
    h5py = _h5py()
    path = _existing(path)
    with _reading(path, "an HDF5 file (save_hdf5's layout)"):
        with h5py.File(path, "r") as f:
            if "responses" not in f or not isinstance(f["responses"], h5py.Group) or not len(f["responses"]):
                raise NeuralDataError(f"{path} holds no /responses/<area> datasets (found {list(f.keys())})")
            present = list(f["responses"].keys())
            chosen = present if areas is None else list(areas)
            missing = [a for a in chosen if a not in present]
            if missing:
                raise KeyError(f"{path} has no areas {missing}; it holds {present}")
            responses = {a: f["responses"][a][()] for a in chosen}
            n = _n_stimuli(responses, path)
            stimulus_ids = _h5_read(f["stimulus_ids"]) if "stimulus_ids" in f else np.arange(n)
            neuron_ids = {a: _h5_read(f["neuron_ids"][a]) for a in chosen if "neuron_ids" in f and a in f["neuron_ids"]}
            stimuli = f["stimuli"][()] if "stimuli" in f else None
            meta = json.loads(f.attrs["meta"]) if "meta" in f.attrs else {}
        meta.setdefault("source", str(path))
        return NeuralData(responses, stimulus_ids, neuron_ids, meta, stimuli)


def load_recording(path: str | Path, *, areas: Sequence[str] | None = None) -> NeuralData:
    """:func:`load_npz` or :func:`load_hdf5` by the file's suffix (``.npz``; ``.h5`` / ``.hdf5``)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        return load_npz(path, areas=areas)
    if suffix in (".h5", ".hdf5"):
        return load_hdf5(path, areas=areas)
    if suffix == ".nwb":
        data = load_nwb(path)
        if areas is not None:
            missing = [a for a in areas if a not in data.responses]
            if missing:
                raise KeyError(f"{path} has no areas {missing}; it holds {data.areas}")
            data = replace(data, responses={a: data.responses[a] for a in areas},
                           neuron_ids={a: v for a, v in data.neuron_ids.items() if a in areas})
        return data
    raise NeuralDataError(f"unknown recording format {suffix!r} of {path}; use .npz, .h5 / .hdf5 or .nwb")


# ----------------------------------------------------------------------------- NWB
#: Columns of a stimulus-presentation table tried, in order, as the stimulus identity.
NWB_STIMULUS_COLUMNS = ("stimulus_id", "stimulus_index", "image_index", "image_id", "frame", "stimulus")
#: Columns of the units (or electrodes) table tried, in order, as the brain area.
NWB_AREA_COLUMNS = ("brain_area", "area", "location", "ecephys_structure_acronym", "structure_acronym")


def _nwb_series(nwb: Any, name: str) -> Any:
    """A TimeSeries by name in ``acquisition`` or by ``module/interface[/series]`` in ``processing``."""
    if name in nwb.acquisition:
        obj = nwb.acquisition[name]
    else:
        parts = name.strip("/").split("/")
        if parts[0] == "processing":
            parts = parts[1:]
        try:
            obj = nwb.processing[parts[0]]
            for part in parts[1:]:
                obj = obj[part]
        except (KeyError, IndexError) as exc:
            raise KeyError(f"no time series {name!r} in the NWB file (acquisition: {list(nwb.acquisition)}; "
                           f"processing modules: {list(nwb.processing)})") from exc
    if not hasattr(obj, "data"):
        series = list(getattr(obj, "roi_response_series", {}) or getattr(obj, "time_series", {}) or [])
        raise ValueError(f"{name!r} is a container, not a time series; name one inside it ({series})")
    return obj


def _series_times(series: Any, n: int) -> np.ndarray:
    if series.timestamps is not None:
        return np.asarray(series.timestamps[:], dtype=np.float64)
    rate, start = series.rate, series.starting_time or 0.0
    if not rate:
        raise ValueError(f"time series {series.name!r} has neither timestamps nor a rate")
    return start + np.arange(n) / float(rate)


def load_nwb(
    path: str | Path,
    *,
    stimulus_table: str | None = None,
    stimulus_column: str | None = None,
    window: tuple[float, float | None] = (0.0, None),
    signal: str | None = None,
    area_column: str | None = None,
    area: str = "units",
    drop_stimuli: Sequence[Any] = (-1,),
) -> NeuralData:
    """Responses per stimulus from a Neurodata Without Borders file (read with ``pynwb``).

    Accepted layout: a stimulus-presentation table - an ``intervals`` table (``stimulus_table``;
    default ``"stimulus_presentations"``, the Allen Brain Observatory's, else ``trials``) with
    ``start_time``, ``stop_time`` and a stimulus-identity column (``stimulus_column``; default the
    first of :data:`NWB_STIMULUS_COLUMNS` present) - plus the neural signal, either

    * spike times in the ``units`` table (default): the response of a unit to one presentation is
      its **spike count** in ``[start + window[0], start + window[1])`` (``window[1] = None``: up to
      the presentation's ``stop_time``); areas from a units column (``area_column``, default the first
      of :data:`NWB_AREA_COLUMNS` in the units table, else in the electrodes table via each unit's
      first electrode), or one area named ``area``;
    * or a continuous ``TimeSeries`` (``signal``: a name in ``acquisition`` or a path
      ``module/interface/series`` in ``processing``, e.g. ``ophys/DfOverF/RoiResponseSeries``) with
      data ``[time, neurons]``: the **mean** of the samples inside the same window; one area ``area``.

    Presentations whose stimulus id is in ``drop_stimuli`` (default ``-1``, the Allen tables' blank
    frames) or missing are dropped. Stimuli are ordered by id. When every stimulus was presented the
    same number of times, the responses keep the repeats (``[trials, stimuli, neurons]``, repeats in
    presentation order), else they are averaged over presentations. ``meta["preprocessing"]`` records
    the window, the counts and what was dropped.
    """
    try:
        from pynwb import NWBHDF5IO
    except ImportError as exc:  # pragma: no cover - pynwb is in the neural / dev extras
        raise ImportError("NWB files need the pynwb package: pip install 'cortexsnn[neural]' (or pynwb)") from exc

    path = _existing(path)
    t0, t1 = float(window[0]), (None if window[1] is None else float(window[1]))
    if t1 is not None and t1 <= t0:
        raise ValueError(f"window must have end > start, got {window}")
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        intervals = dict(nwb.intervals or {})
        names = [stimulus_table] if stimulus_table else ["stimulus_presentations", "trials"]
        table = next((intervals[n] for n in names if n in intervals), None)
        if table is None:
            raise ValueError(f"{path} has no stimulus presentation table {names}; its interval tables: "
                             f"{sorted(intervals)} (pass stimulus_table=)")
        columns = list(table.colnames)
        column = stimulus_column or next((c for c in NWB_STIMULUS_COLUMNS if c in columns), None)
        if column is None or column not in columns:
            raise ValueError(f"table {table.name!r} has no stimulus column {stimulus_column or list(NWB_STIMULUS_COLUMNS)}; "
                             f"its columns: {columns} (pass stimulus_column=)")
        starts = np.asarray(table["start_time"][:], dtype=np.float64)
        stops = np.asarray(table["stop_time"][:], dtype=np.float64)
        ids = np.asarray(table[column][:])
        if ids.dtype.kind not in "iuf":
            ids = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in ids])
        keep = np.isfinite(ids) if ids.dtype.kind == "f" else np.ones(len(ids), dtype=bool)
        for d in drop_stimuli:
            if ids.dtype.kind in "iuf":
                if isinstance(d, (int, float)) and not isinstance(d, bool):
                    keep &= ids != d
            else:
                keep &= ids != str(d)
        dropped = int((~keep).sum())
        starts, stops, ids = starts[keep], stops[keep], ids[keep]
        if not len(ids):
            raise ValueError(f"no stimulus presentations left in {table.name!r} after dropping {list(drop_stimuli)}")
        begin = starts + t0
        end = stops if t1 is None else starts + t1
        if signal is None:
            if nwb.units is None or len(nwb.units) == 0:
                raise ValueError(f"{path} has no units table with spike times; name a continuous signal with signal=")
            units = nwb.units
            ucols = list(units.colnames)
            labels: np.ndarray | None = None
            acol = area_column or next((c for c in NWB_AREA_COLUMNS if c in ucols), None)
            if acol is not None and acol in ucols:
                labels = np.asarray([str(v) for v in units[acol][:]])
            elif "electrodes" in ucols and nwb.electrodes is not None:
                ecols = list(nwb.electrodes.colnames)
                ecol = area_column or next((c for c in NWB_AREA_COLUMNS if c in ecols), None)
                if ecol is not None and ecol in ecols:
                    labels = np.asarray([str(units["electrodes"][i][ecol].iloc[0]) for i in range(len(units))])
            if area_column is not None and labels is None:
                raise ValueError(f"no column {area_column!r} in the units or electrodes table")
            counts = np.empty((len(ids), len(units)), dtype=np.float64)
            for u in range(len(units)):
                spikes = np.sort(np.asarray(units["spike_times"][u], dtype=np.float64))
                counts[:, u] = np.searchsorted(spikes, end, side="left") - np.searchsorted(spikes, begin, side="left")
            per_presentation = counts
            unit_ids = np.asarray(units.id[:])
            how = "spike counts"
        else:
            series = _nwb_series(nwb, signal)
            data = np.asarray(series.data[:], dtype=np.float64)
            if data.ndim == 1:
                data = data[:, None]
            times = _series_times(series, data.shape[0])
            lo = np.searchsorted(times, begin, side="left")
            hi = np.searchsorted(times, end, side="left")
            empty = np.flatnonzero(hi <= lo)
            if empty.size:
                raise ValueError(f"{empty.size} presentations hold no sample of {signal!r} in the window "
                                 f"(first at t = {begin[empty[0]]:.3f} s); widen window=")
            csum = np.concatenate([np.zeros((1, data.shape[1])), np.cumsum(data, axis=0)])
            per_presentation = (csum[hi] - csum[lo]) / (hi - lo)[:, None]
            labels, unit_ids, how = None, np.arange(data.shape[1]), f"mean of {signal!r}"
        session = str(nwb.session_description)
    order = np.unique(ids)
    index = np.searchsorted(order, ids)
    reps = np.bincount(index, minlength=len(order))
    if reps.min() == reps.max():
        k = int(reps[0])
        trial_resp = np.empty((k, len(order), per_presentation.shape[1]))
        seen = np.zeros(len(order), dtype=np.int64)
        for row, s in enumerate(index):
            trial_resp[seen[s], s] = per_presentation[row]
            seen[s] += 1
        resp_all = trial_resp
    else:
        sums = np.zeros((len(order), per_presentation.shape[1]))
        np.add.at(sums, index, per_presentation)
        resp_all = sums / reps[:, None]
    groups = {area: np.arange(per_presentation.shape[1])} if labels is None else {
        str(a): np.flatnonzero(labels == a) for a in dict.fromkeys(labels.tolist())}
    responses = {a: resp_all[..., cols] for a, cols in groups.items()}
    neuron_ids = {a: unit_ids[cols] for a, cols in groups.items()}
    end_txt = "stop_time" if t1 is None else f"start + {t1} s"
    steps = [f"{how} in [start + {t0} s, {end_txt}) of each presentation of {table.name!r} (column {column!r})",
             (f"{int(reps[0])} presentations per stimulus kept as trials" if reps.min() == reps.max()
              else f"averaged over {int(reps.min())}-{int(reps.max())} presentations per stimulus")]
    if dropped:
        steps.insert(1, f"{dropped} presentations with stimulus id in {list(drop_stimuli)} or missing dropped")
    meta = {"dataset": path.stem, "source": str(path), "format": "NWB", "session_description": session,
            "units": "spike count per window" if signal is None else "mean signal per window",
            "preprocessing": steps}
    return NeuralData(responses, order, neuron_ids, meta)


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is present in the dev environment
        raise ImportError("HDF5 files need the h5py package: pip install h5py (or use the NPZ format)") from exc
    return h5py


def _h5_safe(a: np.ndarray) -> np.ndarray:
    """Unicode arrays as UTF-8 bytes (HDF5 has no numpy ``U`` type)."""
    return np.char.encode(a, "utf-8") if a.dtype.kind == "U" else a


def _h5_read(dataset: Any) -> np.ndarray:
    a = dataset[()]
    return np.char.decode(a, "utf-8") if a.dtype.kind == "S" else a


def load_rdm_npz(path: str | Path, *, key: str = "arr_0", names: Sequence[str] | None = None,
                 meta: dict[str, Any] | None = None) -> RDMSet:
    """A stack of RDMs ``[sets, n, n]`` (or one ``[n, n]``) stored under ``key`` in an ``.npz``."""
    path = _existing(path)
    with np.load(path, allow_pickle=False) as f:
        if key not in f.files:
            raise KeyError(f"{path} has no array {key!r} (it holds {f.files})")
        r = np.asarray(f[key], dtype=np.float64)
    if r.ndim == 2:
        r = r[None]
    names = list(names) if names is not None else [f"{path.stem}[{i}]" for i in range(r.shape[0])]
    return RDMSet(r, names, {"source": str(path), **(meta or {})})


def _existing(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist")
    return p


def _find_file(directory: Path, name: str) -> Path:
    """``directory / name``, matched case-insensitively (Huang et al.'s files mix ``visp`` and ``VISp``)."""
    exact = directory / name
    if exact.exists():
        return exact
    if directory.is_dir():
        for p in directory.iterdir():
            if p.name.lower() == name.lower():
                return p
    raise FileNotFoundError(f"{exact} not found (case-insensitive search in {directory})")


def _load_npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


# ----------------------------------------------------------------------------- Huang et al.'s layouts
def load_allen_natural_scenes(
    directory: str | Path,
    *,
    areas: Sequence[str] = ALLEN_AREAS,
    time_bins: int = 25,
    reliability_threshold: float = 0.8,
    n_trials: int = 50,
    divisor: float = 25.0,
) -> NeuralData:
    """Allen Neuropixels natural scenes in Huang et al.'s layout: ``{area}_{time_bins}.npy``.

    Each file is ``[118, time_bins, neurons]`` spike counts summed over ``n_trials`` trials, with
    split-half reliabilities in ``shr_{area}.npy``. As Huang et al.'s code: keep neurons with reliability
    ``>= reliability_threshold``, divide by the trials, sum over time bins, divide by ``divisor``
    (25 in both of Huang et al.'s papers, whatever ``time_bins``; a global scale that no metric depends on).
    """
    directory = _existing(directory)
    responses, neuron_ids = {}, {}
    steps = []
    for area in areas:
        counts = _load_npy(_find_file(directory, f"{area}_{time_bins}.npy"))
        if counts.ndim != 3 or counts.shape[1] != time_bins:
            raise ValueError(f"{area}_{time_bins}.npy must be [stimuli, {time_bins}, neurons], got {counts.shape}")
        shr = _load_npy(_find_file(directory, f"shr_{area}.npy")).ravel()
        if shr.shape[0] != counts.shape[2]:
            raise ValueError(f"shr_{area}.npy has {shr.shape[0]} values for {counts.shape[2]} neurons")
        keep = np.flatnonzero(shr >= reliability_threshold)
        responses[area] = counts[:, :, keep].astype(np.float64).sum(axis=1) / n_trials / divisor
        neuron_ids[area] = keep
        steps.append(f"{area}: split-half reliability >= {reliability_threshold} ({keep.size} of {shr.size} neurons kept)")
    steps.append(f"counts / {n_trials} trials, summed over {time_bins} time bins, / {divisor}")
    n = next(iter(responses.values())).shape[0]
    meta = {"dataset": "allen_natural_scenes", "source": str(directory), "species": "mouse",
            "units": "spikes per trial (summed over bins) / divisor", "preprocessing": steps}
    return NeuralData(responses, np.arange(n), neuron_ids, meta)


def load_allen_natural_movie(
    directory: str | Path,
    movie: Literal["one", "three"] = "one",
    *,
    areas: Sequence[str] = ALLEN_AREAS,
    min_rate_hz: float = 0.5,
) -> NeuralData:
    """Allen natural movie one (900 frames, 30 s, 20 trials) or three (3600, 120 s, 10) as Huang et al.

    Files ``{area}_1.npy``: ``[frames, 1, neurons]`` spike counts per 33 ms frame, summed over the
    trials. Keep neurons firing ``>= min_rate_hz`` (total spikes / duration / trials); the response is
    ``count / trials`` (a per-frame PSTH), rows in frame order.
    """
    if movie not in _MOVIES:
        raise ValueError(f"movie must be 'one' or 'three', got {movie!r}")
    frames, duration, trials = _MOVIES[movie]
    directory = _existing(directory)
    responses, neuron_ids, steps = {}, {}, []
    for area in areas:
        counts = _load_npy(_find_file(directory, f"{area}_1.npy"))
        if counts.ndim == 3 and counts.shape[1] == 1:
            counts = counts[:, 0, :]
        if counts.ndim != 2 or counts.shape[0] != frames:
            raise ValueError(f"{area}_1.npy must be [{frames}, 1, neurons] for movie {movie!r}, got {counts.shape}")
        rate = counts.astype(np.float64).sum(axis=0) / duration / trials
        keep = np.flatnonzero(rate >= min_rate_hz)
        responses[area] = counts[:, keep].astype(np.float64) / trials
        neuron_ids[area] = keep
        steps.append(f"{area}: mean rate >= {min_rate_hz} Hz ({keep.size} of {rate.size} neurons kept)")
    steps.append(f"counts / {trials} trials (per-frame PSTH)")
    name = "allen_natural_movie_" + movie
    meta = {"dataset": name, "source": str(directory), "species": "mouse", "frame_rate_hz": frames / duration,
            "units": "spikes per frame per trial", "preprocessing": steps}
    return NeuralData(responses, np.arange(frames), neuron_ids, meta)


def load_macaque_face(directory: str | Path, *, ceiling_threshold: float = 0.1) -> NeuralData:
    """Chang et al. 2021 area AM (``AM.npy`` ``[2100, 159]``): keep neurons whose
    ``noise_ceiling.npy`` is ``>= ceiling_threshold`` (148 remain at 0.1), as Huang et al. (AAAI 2023)."""
    directory = _existing(directory)
    am = _load_npy(_find_file(directory, "AM.npy"))
    ceiling = _load_npy(_find_file(directory, "noise_ceiling.npy")).ravel()
    if am.ndim != 2 or ceiling.shape[0] != am.shape[1]:
        raise ValueError(f"AM.npy {am.shape} and noise_ceiling.npy {ceiling.shape} do not match")
    keep = np.flatnonzero(ceiling >= ceiling_threshold)
    meta = {"dataset": "macaque_face", "source": str(directory), "species": "macaque",
            "preprocessing": [f"AM: noise ceiling >= {ceiling_threshold} ({keep.size} of {ceiling.size} neurons kept)"]}
    return NeuralData({"AM": am[:, keep].astype(np.float64)}, np.arange(am.shape[0]), {"AM": keep}, meta)


def load_macaque_synthetic(directory: str | Path, *, areas: Sequence[str] = ("V4", "IT")) -> NeuralData:
    """Majaj, Hong et al. 2015 (Huang et al.'s ``macaque_synthetic``): ``V4.npy`` ``[3200, 88]`` and
    ``IT.npy`` ``[3200, 168]``, already normalised; used as they are (no filtering)."""
    directory = _existing(directory)
    responses = {a: _load_npy(_find_file(directory, f"{a}.npy")) for a in areas}
    n = next(iter(responses.values())).shape[0]
    meta = {"dataset": "macaque_synthetic", "source": str(directory), "species": "macaque",
            "reference": "Majaj, Hong et al. 2015, J. Neurosci.", "preprocessing": []}
    return NeuralData(responses, np.arange(n), {}, meta)


def pool_allen_units(raw: Sequence[Sequence[Any]], areas: Sequence[str] = ALLEN_AREAS) -> dict[str, np.ndarray]:
    """Pool the units of all mice per area from the raw nested layout behind Huang et al.'s files.

    Args:
        raw: a list over mice of a list over ``areas`` (``None`` where a mouse lacks the area) of a
            list over stimuli of spike-count arrays ``[trials, bins, units]``.

    Returns:
        ``area -> [stimuli, bins, units]`` counts summed over trials, the units of the mice
        concatenated in mouse order (the layout of ``{area}_{bins}.npy``). Areas no mouse has are left out.
    """
    pooled: dict[str, np.ndarray] = {}
    for a, area in enumerate(areas):
        per_mouse = []
        for m, mouse in enumerate(raw):
            if len(mouse) != len(areas):
                raise ValueError(f"mouse {m} lists {len(mouse)} areas, expected {len(areas)} ({list(areas)})")
            stimuli = mouse[a]
            if stimuli is None:
                continue
            summed = [np.asarray(x).sum(axis=0) for x in stimuli]  # [bins, units] per stimulus
            shapes = {x.shape for x in summed}
            if len(shapes) != 1:
                raise ValueError(f"mouse {m}, {area}: stimuli have different [bins, units] shapes {sorted(shapes)}")
            per_mouse.append(np.stack(summed))
        if not per_mouse:
            continue
        if len({x.shape[:2] for x in per_mouse}) != 1:
            raise ValueError(f"{area}: mice differ in stimuli or bins {[x.shape[:2] for x in per_mouse]}")
        pooled[area] = np.concatenate(per_mouse, axis=2)
    return pooled


#: Huang et al.'s neural dataset names -> reader.
NEURAL_DATASETS = {
    "allen_natural_scenes": load_allen_natural_scenes,
    "allen_natural_movie_one": lambda d, **kw: load_allen_natural_movie(d, "one", **kw),
    "allen_natural_movie_three": lambda d, **kw: load_allen_natural_movie(d, "three", **kw),
    "macaque_face": load_macaque_face,
    "macaque_synthetic": load_macaque_synthetic,
}


def load_neural_dataset(name: str, directory: str | Path, **options: Any) -> NeuralData:
    """One of Huang et al.'s neural datasets by name (``--neural-dataset``), from its directory."""
    if name not in NEURAL_DATASETS:
        raise ValueError(f"unknown neural dataset {name!r}; known: {sorted(NEURAL_DATASETS)}")
    return NEURAL_DATASETS[name](directory, **options)


# ----------------------------------------------------------------------------- public validation sets
@dataclass(frozen=True)
class Kriegeskorte92:
    """The 92-image set (Kriegeskorte et al. 2008) as rsatoolbox's demos ship it.

    Attributes:
        fig1: monkey IT (674 neurons) and human IT (316 voxels) RDMs of the paper's Figure 1.
        brain: 8 human IT RDMs (4 subjects x 2 sessions); their mean is ``fig1["hITvisStim_316vx"]``.
        models: 8 model RDMs (animacy, ..., monkeyIT, ..., RADON).
        behaviour: 16 subjects' similarity-judgement RDMs.
        images: ``[92, 175, 175, 3]`` uint8; categories: one label per image;
        category_vectors: ``[92, 12]`` 0/1 membership in ``category_labels``.
    """

    fig1: RDMSet
    brain: RDMSet
    models: RDMSet
    behaviour: RDMSet
    images: np.ndarray
    categories: list[str]
    category_vectors: np.ndarray
    category_labels: list[str]


def _mat_str(value: Any) -> str:
    a = np.asarray(value).ravel()
    return str(a[0]) if a.size else ""


#: The 92-image files in rsatoolbox's repository (``demos/92imageData``): name -> (commit, sha256).
#: The checksums are those of the copies validated by this project's tests.
KRIEGESKORTE92_FILES = {
    "Kriegeskorte_Neuron2008_supplementalData.mat": (
        "9ac4b5cdcb702c02481cabba33c551d187d50b6c", "06f21214399a5d43dc264eed19a7f4b8daf11c8622a59eec3e106064ce5e3504"),
    "92_brainRDMs.mat": (
        "a019e37ee631456aa99425efb33cb4e26e9ea181", "1743f90a15e895798a94318649e80e1123a7e5943a1703fa1dd7c31ea5780b7c"),
    "92_modelRDMs.mat": (
        "ccd23d83e494c2e213a618a5fbc6143d051478c6", "e1d2b58bb2f9508bc13da4c81b94d1ab07823b25ed30b9563bd9d6d730c2a00a"),
    "92_behavRDMs.mat": (
        "8ee4a8f6b55f788acbee29521916f5f38f2926be", "7a8e118c144c3840adeeeef6ea0706a0be2b3e80df719af15fbb56fc62562f5f"),
}
_RSATOOLBOX_RAW = "https://raw.githubusercontent.com/rsagroup/rsatoolbox/{commit}/demos/92imageData/{name}"


def fetch_kriegeskorte92(directory: str | Path | None = None, *, progress: bool = False) -> Path:
    """The folder of the 92-image files, downloading any that are missing (``pooch``, pinned
    commits, SHA-256 verified). Default folder: ``$CORTEXSNN_DATA/kriegeskorte92``. Files already
    there with the right checksum are not downloaded again; a file with a wrong checksum is fetched
    anew (and the call fails offline)."""
    import pooch

    from cortexsnn.data.paths import data_dir
    from cortexsnn.utils.io import make_readable

    target = Path(directory).expanduser() if directory is not None else data_dir() / "kriegeskorte92"
    for name, (commit, sha256) in KRIEGESKORTE92_FILES.items():
        fresh = not (target / name).is_file()
        path = pooch.retrieve(_RSATOOLBOX_RAW.format(commit=commit, name=name), known_hash=f"sha256:{sha256}",
                              fname=name, path=target, progressbar=progress)
        if fresh:
            make_readable(path)  # pooch moves its 0600 temporary file into place
    return target


def load_kriegeskorte92(directory: str | Path | None = None) -> Kriegeskorte92:
    """Read the four MATLAB files of the 92-image set (``scipy.io.loadmat``; no code is run).

    ``directory=None`` uses :func:`fetch_kriegeskorte92` (download once, verified).
    """
    from scipy.io import loadmat

    directory = fetch_kriegeskorte92() if directory is None else _existing(directory)
    supp = loadmat(_find_file(directory, "Kriegeskorte_Neuron2008_supplementalData.mat"))
    src = {"source": str(directory), "reference": "Kriegeskorte et al. 2008, Neuron"}
    fig = supp["RDMs_mIT_hIT_fig1"][0]
    fig1 = RDMSet.from_matrices([e["RDM"] for e in fig], [_mat_str(e["name"]) for e in fig], src)
    stim = supp["stimuli_92objs"][0]
    images = np.stack([np.asarray(s["image"], dtype=np.uint8) for s in stim])
    categories = [_mat_str(s["category"]) for s in stim]
    labels = [_mat_str(v) for v in supp["categoryLabels"].ravel()]

    brain = loadmat(_find_file(directory, "92_brainRDMs.mat"))["RDMs"][0]  # [4 subjects, 2 sessions]
    entries = [brain[s, k] for s in range(brain.shape[0]) for k in range(brain.shape[1])]
    brain_names = [_mat_str(e["name"]) for e in entries]
    # the file stores only a name per RDM ("hIT | BE | Session: 1"); read subject and session from
    # it once, here, into descriptors
    parts = [[p.strip() for p in n.split("|")] for n in brain_names]
    described = {"area": [p[0] for p in parts], "subject": [p[1] for p in parts],
                 "session": [int(p[2].rsplit(":", 1)[1]) for p in parts]}
    brain_set = RDMSet.from_matrices([e["RDM"] for e in entries], brain_names, src, descriptors=described)
    models = loadmat(_find_file(directory, "92_modelRDMs.mat"))["Models"][0]
    model_set = RDMSet.from_matrices([e["RDM"] for e in models], [_mat_str(e["name"]) for e in models], src)
    behav = loadmat(_find_file(directory, "92_behavRDMs.mat"))["rdms_behav_92"][0]
    behav_set = RDMSet.from_matrices([e["RDM"] for e in behav], [_mat_str(e["name"]) for e in behav], src)
    return Kriegeskorte92(fig1, brain_set, model_set, behav_set, images, categories,
                          np.asarray(supp["categoryVectors"], dtype=np.uint8), labels)


def load_algonauts78(directory: str | Path, roi: Literal["EVC", "IT"] = "IT") -> RDMSet:
    """15 subjects' fMRI RDMs of the 78-image Algonauts 2019 set for ``roi`` (``brain_data/`` of the
    Net2Brain test data). The stored noise ceiling, when present, is in ``meta["noise_ceiling"]``
    (Net2Brain's squared Spearman ``lnc`` / ``unc``)."""
    if roi not in ("EVC", "IT"):
        raise ValueError(f"roi must be 'EVC' or 'IT', got {roi!r}")
    directory = _existing(directory)
    brain = directory / "brain_data" if (directory / "brain_data").is_dir() else directory
    fname = f"fmri_{roi}_RDMs.npz"
    meta: dict[str, Any] = {"roi": roi, "reference": "Algonauts 2019 (78 images), via Net2Brain"}
    log = brain / "noise_ceiling_log.json"
    if log.exists():
        stored = json.loads(log.read_text()).get(fname)
        if stored is not None:
            meta["noise_ceiling"] = stored
    rdms = load_rdm_npz(_find_file(brain, fname), meta=meta)
    subjects = [f"{i + 1:02d}" for i in range(len(rdms))]
    names = [f"{roi} subject {s}" for s in subjects]
    return replace(rdms, names=names, stimulus_ids=np.array([f"image_{i + 1:02d}" for i in range(rdms.n_stimuli)]),
                   descriptors={"subject": subjects, "area": [roi] * len(subjects)})


def load_allen_2p_ns118(path: str | Path) -> NeuralData:
    """Mouse VISp 2-photon responses to the 118 natural scenes (Allen Brain Observatory, experiment
    511510667): mean dF/F (%) over 50 repeats, ``[118, 212]``, with the scenes at 31 x 31 px.

    ``path`` is the ``.npz`` file or its folder. Extra arrays of the file are kept in ``meta["extra"]``.
    """
    path = _existing(path)
    if path.is_dir():
        candidates = sorted(path.glob("*ns118*.npz"))
        if not candidates:
            raise FileNotFoundError(f"no *ns118*.npz file in {path}")
        path = candidates[0]
    with np.load(path, allow_pickle=False) as f:
        responses = f["responses"]
        images = f["images31"] if "images31" in f.files else None
        extra = {k: f[k].tolist() for k in f.files if k not in ("responses", "images31")}
    meta = {"dataset": "allen_visp_2p_ns118", "source": str(path), "species": "mouse", "area": "VISp",
            "units": "mean dF/F (%) over 50 repeats", "preprocessing": [], "extra": extra}
    return NeuralData({"VISp": responses.astype(np.float64)}, np.arange(responses.shape[0]), {}, meta, images)
