"""STDP and R-STDP weight updates for winners, one image at a time or batched.

For a winner (feature ``f`` at row ``r``, column ``c``) of a layer with kernel ``k``, every
weight ``w[f, :, i, j]`` sees the input latency ``l_in = latency[:, r + i, c + j]`` and the
winner's latency ``l_out``: pre-before-post (or simultaneous) when ``l_in <= l_out``, which gives
rate ``a+``, otherwise (including inputs that never spiked) ``a-``. The update is
``dw = a (w - lb)(ub - w)`` with the multiplicative stabiliser, ``dw = a`` without; after every
update call the whole weight tensor is clamped to ``[lb, ub]`` (as Mozafari et al. does).

Two modes (see :class:`cortexsnn.plasticity.training`):

* **sequential** — :func:`apply_stdp_image`: Mozafari et al.'s semantics, weights change after each image.
* **batched** — :func:`apply_stdp_batch`: the updates of all winners of all images are computed
  from the weights at the start of the batch, summed, applied together, then clamped.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from cortexsnn.plasticity.spike_ops import receptive_field_latencies

__all__ = ["STDPRule", "RSTDPRule", "stdp_rates_for_samples", "stdp_delta", "apply_stdp_image", "apply_stdp_batch"]


@dataclass
class STDPRule:
    """Rates and bounds of (unsupervised) STDP.

    ``a_plus``/``a_minus`` are the initial rates; with ``double_every`` set, ``a+`` doubles after
    every ``double_every`` training samples up to ``max_a_plus`` and ``a- = minus_ratio * a+``
    (the spec's schedule: 500 samples, 0.15, -0.75).
    """

    a_plus: float = 0.004
    a_minus: float = -0.003
    stabilizer: bool = True
    lower: float = 0.0
    upper: float = 1.0
    double_every: int | None = 500
    max_a_plus: float = 0.15
    minus_ratio: float = -0.75


@dataclass
class RSTDPRule:
    """Rates and bounds of reward-modulated STDP.

    Reward applies STDP with ``(reward_plus, reward_minus)``; punishment applies anti-STDP with
    ``(punish_plus, punish_minus)`` (pre-before-post rate first). With ``adaptive`` the rates of
    every batch after the first are scaled: reward rates by the previous batch's miss fraction,
    punishment rates by its hit fraction.
    """

    reward_plus: float = 0.004
    reward_minus: float = -0.003
    punish_plus: float = -0.004
    punish_minus: float = 0.0005
    stabilizer: bool = False
    lower: float = 0.2
    upper: float = 0.8
    adaptive: bool = True

    def scaled(self, factor: float) -> "RSTDPRule":
        """This rule with its four reward and punishment rates multiplied by ``factor``."""
        return replace(self, reward_plus=self.reward_plus * factor, reward_minus=self.reward_minus * factor,
                       punish_plus=self.punish_plus * factor, punish_minus=self.punish_minus * factor)


def stdp_rates_for_samples(rule: STDPRule, sample_numbers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a+, a-)`` in force for the given 1-based sample counts of a layer.

    Mozafari et al.'s code increments its counter before each sample and doubles ``a+`` when it reaches
    ``double_every``, so samples ``1 .. double_every - 1`` use the initial rates and sample
    ``n`` uses ``min(a+ 2^(n // double_every), max)`` (``a- = minus_ratio a+`` once doubled).
    """
    n = sample_numbers.to(torch.float64)
    if rule.double_every is None:
        return torch.full_like(n, rule.a_plus), torch.full_like(n, rule.a_minus)
    doublings = torch.div(n, rule.double_every, rounding_mode="floor")
    a_plus = torch.clamp(rule.a_plus * torch.pow(2.0, doublings), max=rule.max_a_plus)
    a_plus = torch.where(doublings > 0, a_plus, torch.full_like(n, rule.a_plus))
    a_minus = torch.where(doublings > 0, a_plus * rule.minus_ratio, torch.full_like(n, rule.a_minus))
    return a_plus, a_minus


def stdp_delta(
    weight: torch.Tensor,
    in_latencies: torch.Tensor,
    winners: torch.Tensor,
    winner_latency: torch.Tensor,
    valid: torch.Tensor,
    a_plus: torch.Tensor,
    a_minus: torch.Tensor,
    stabilizer: bool,
    lower: float,
    upper: float,
) -> torch.Tensor:
    """Summed weight change of all valid winners of a batch, from ``weight`` as it is.

    Args:
        weight: ``[F, C, kh, kw]``.
        in_latencies: padded input latencies ``[B, C, H, W]``.
        winners: ``[B, K, 3]`` (feature, row, column); winner_latency: their spike steps ``[B, K]``;
        valid: ``[B, K]``.
        a_plus, a_minus: rates per image ``[B]`` (or per image and winner ``[B, K]``).

    Returns:
        ``dw`` ``[F, C, kh, kw]`` (no clamping).
    """
    b, k = valid.shape
    if k == 0 or not bool(valid.any()):
        return torch.zeros_like(weight)
    kernel = (weight.shape[-2], weight.shape[-1])
    fields = receptive_field_latencies(in_latencies, winners, kernel).long()  # [B, K, C, kh, kw]
    pre_first = fields <= winner_latency.long().view(b, k, 1, 1, 1)
    ap = a_plus.to(weight.dtype).reshape(b, -1).expand(b, k).reshape(b, k, 1, 1, 1)
    an = a_minus.to(weight.dtype).reshape(b, -1).expand(b, k).reshape(b, k, 1, 1, 1)
    rate = torch.where(pre_first, ap, an) * valid.view(b, k, 1, 1, 1).to(weight.dtype)
    features = winners[..., 0]
    if stabilizer:
        w = weight[features]  # [B, K, C, kh, kw]
        rate = rate * ((w - lower) * (upper - w))
    delta = torch.zeros_like(weight)
    delta.index_add_(0, features.reshape(-1), rate.reshape(-1, *weight.shape[1:]))
    return delta


def apply_stdp_batch(weight: torch.Tensor, delta: torch.Tensor, lower: float, upper: float) -> None:
    """Add a batch's summed update and clamp (in place)."""
    weight.add_(delta).clamp_(lower, upper)


def apply_stdp_image(
    weight: torch.Tensor,
    in_latencies: torch.Tensor,
    winners: torch.Tensor,
    winner_latency: torch.Tensor,
    valid: torch.Tensor,
    a_plus: float | torch.Tensor,
    a_minus: float | torch.Tensor,
    stabilizer: bool,
    lower: float,
    upper: float,
    clamp_all: bool = True,
) -> None:
    """One image's update in place (Mozafari et al.'s per-image semantics).

    The winners of one image are distinct features, so their updates do not overlap. With
    ``clamp_all=False`` only the updated features are clamped, which is equivalent once the
    whole tensor lies within the bounds (the caller tracks that).

    Args:
        in_latencies: ``[1, C, H, W]`` (padded); winners: ``[1, K, 3]``; winner_latency,
        valid: ``[1, K]``.
    """
    use = valid[0]
    if not bool(use.any()):
        if clamp_all:
            weight.clamp_(lower, upper)
        return
    features = winners[0, use, 0]  # distinct features
    kernel = (weight.shape[-2], weight.shape[-1])
    fields = receptive_field_latencies(in_latencies, winners[:, use], kernel)[0].long()  # [K, C, kh, kw]
    pre_first = fields <= winner_latency[0, use].long().view(-1, 1, 1, 1)
    ap = torch.as_tensor(a_plus, dtype=torch.float64).to(weight.dtype)
    an = torch.as_tensor(a_minus, dtype=torch.float64).to(weight.dtype)
    rate = torch.where(pre_first, ap, an)
    w = weight[features]
    if stabilizer:
        rate = rate * ((w - lower) * (upper - w))
    weight[features] = w + rate
    if clamp_all:
        weight.clamp_(lower, upper)
    else:
        weight[features] = weight[features].clamp_(lower, upper)
