"""Representational similarity between networks and brains, in torch (CPU or GPU).

Scoring pipeline: :func:`score_suite` scores models on named brain benchmarks
(:func:`load_benchmarks`: macaque, human and mouse data) with held-out layer selection, ceilings,
paired comparisons and a tidy results table (:class:`SuiteResult`); :func:`score_model` /
:func:`score_features` score one model against one data set with any metric (:class:`ScoreTable`).

RDMs and their comparisons (RSA, time-series RSA), SVCCA / CCA / PWCCA, linear / RBF / debiased
CKA, regression scores (TSVD-ridge with leave-one-out, PCA-ridge with cross-validated R^2), noise
ceilings and bootstrap confidence intervals. Inputs are ``[stimuli, features]`` matrices (numpy
arrays or torch tensors, rows in the same stimulus order); results are Python floats unless a
docstring says otherwise. Precision-critical sums run in float64.
"""
from __future__ import annotations

from ._checks import ConstantRepresentationError, DegenerateInputError, RDMGivenAsResponsesError, SilentLayerError
from .bootstrap import bootstrap_rdm_cis
from .benchmarks import Benchmark, Ceiling, list_benchmarks, load_benchmarks
from .cca import PWCCAVariant, cca, pwcca, seed_cca, svcca, truncated_svd
from .ceilings import bootstrap_ci, rdm_set_ceiling, spearman_brown, split_half_neuron_ceiling, split_half_trial_ceiling
from .cka import center_gram, cka_from_grams, linear_cka, rbf_cka
from .compare import compare_rdms, kendall_tau_a, pearson, rank, rsa, spearman, tsrsa
from .rdm import gram, rdm, square_rdm, upper_triangle
from .results import ScoreTable
from .scoring import MetricOptions, score_features, score_model
from .regression import PCARidge, loo_ridge_predictions, pca_ridge_r2, tsvd_regression
from .suite import ScoringModel, SuiteOptions, SuiteResult, score_suite

__all__ = [
    "score_suite",
    "ScoringModel",
    "SuiteOptions",
    "SuiteResult",
    "Benchmark",
    "Ceiling",
    "list_benchmarks",
    "load_benchmarks",
    "score_model",
    "score_features",
    "ScoreTable",
    "MetricOptions",
    "SilentLayerError",
    "ConstantRepresentationError",
    "DegenerateInputError",
    "RDMGivenAsResponsesError",
    "PWCCAVariant",
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
    "truncated_svd",
    "seed_cca",
    "svcca",
    "cca",
    "pwcca",
    "linear_cka",
    "rbf_cka",
    "cka_from_grams",
    "center_gram",
    "loo_ridge_predictions",
    "tsvd_regression",
    "pca_ridge_r2",
    "PCARidge",
    "split_half_neuron_ceiling",
    "split_half_trial_ceiling",
    "spearman_brown",
    "rdm_set_ceiling",
    "bootstrap_ci",
    "bootstrap_rdm_cis",
]
