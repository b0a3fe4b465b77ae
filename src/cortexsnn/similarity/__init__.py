"""Representational similarity between networks and brains, in torch (CPU or GPU).

RDMs and their comparisons (RSA, time-series RSA), SVCCA / CCA / PWCCA, linear / RBF / debiased
CKA, regression scores (TSVD-ridge with leave-one-out, PCA-ridge with cross-validated R^2), noise
ceilings and bootstrap confidence intervals. Inputs are ``[stimuli, features]`` matrices (numpy
arrays or torch tensors, rows in the same stimulus order); results are Python floats unless a
docstring says otherwise. Precision-critical sums run in float64.
"""
from __future__ import annotations

from ._checks import SilentLayerError
from .compare import compare_rdms, kendall_tau_a, pearson, rank, rsa, spearman, tsrsa
from .rdm import gram, rdm, square_rdm, upper_triangle

__all__ = [
    "SilentLayerError",
    "rdm",
    "gram",
    "upper_triangle",
    "square_rdm",
    "rank",
    "pearson",
    "spearman",
    "kendall_tau_a",
    "compare_rdms",
    "rsa",
    "tsrsa",
]
