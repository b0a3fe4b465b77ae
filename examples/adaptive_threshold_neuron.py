"""A new neuron model without new C: the adaptive-threshold LIF, written as three torch functions.

The adaptive LIF of Bellec et al. (NeurIPS 2018, "Long short-term memory and learning-to-learn in
networks of spiking neurons"): a leaky membrane ``v`` and a threshold ``v_th + beta * a`` whose
adaptation ``a`` rises by 1 after each spike and decays back with time constant ``tau_a``. It is
given to :class:`cortexsnn.neurons.GenericNeuron` as its charge, fire and reset; the time loop and
its backward pass (through the ATan surrogate) come from the toolkit, compiled with
``torch.compile`` under ``--compile``.

The script drives one neuron with a constant current and prints its inter-spike intervals, which
lengthen as the threshold adapts (a plain LIF fires at a fixed rate), then trains a linear layer
into 32 adaptive neurons to fire at a target rate, by gradient descent through the spikes. A few
seconds on 2 CPU cores (``--compile`` adds a minute of compilation the first time).

    python examples/adaptive_threshold_neuron.py --steps 100 --compile
"""
from __future__ import annotations

import argparse
import math

import torch
from torch import nn

from cortexsnn.neurons import ATan, GenericNeuron, LIFNode, reset


def adaptive_lif(tau: float = 5.0, v_threshold: float = 1.0, beta: float = 0.5, tau_a: float = 20.0,
                 compile: bool = False) -> GenericNeuron:
    """The adaptive-threshold LIF (Bellec et al., 2018) as a GenericNeuron."""
    decay_a = math.exp(-1.0 / tau_a)

    def charge(x, state):  # the membrane integrates, the adaptation decays back to 0
        return {"v": state["v"] + (x - state["v"]) / tau, "a": state["a"] * decay_a}

    def fire(state):  # spike where v reaches the adapted threshold
        return state["v"] - (v_threshold + beta * state["a"])

    def reset_after_spike(state, spike):  # hard reset of v, the threshold rises
        return {"v": state["v"] * (1.0 - spike), "a": state["a"] + spike}

    return GenericNeuron(charge, fire, reset_after_spike, state_init={"v": 0.0, "a": 0.0}, surrogate=ATan(2.0),
                         compile=compile)


def inter_spike_intervals(spikes: torch.Tensor) -> list[int]:
    times = torch.nonzero(spikes.flatten()).flatten().tolist()
    return [b - a for a, b in zip(times, times[1:])]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="time steps of the constant-current run")
    parser.add_argument("--current", type=float, default=1.6, help="the constant input current")
    parser.add_argument("--train-steps", type=int, default=40, help="gradient steps of the rate-fitting run")
    parser.add_argument("--target-rate", type=float, default=0.1, help="spikes per neuron and step to reach")
    parser.add_argument("--compile", action="store_true", help="compile the time loop with torch.compile")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    # 1. spike-frequency adaptation under a constant current
    current = torch.full((args.steps, 1, 1), args.current)
    with torch.no_grad():
        adaptive_isi = inter_spike_intervals(adaptive_lif(compile=args.compile)(current))
        plain_isi = inter_spike_intervals(LIFNode(tau=5.0, backend="torch")(current))
    print(f"inter-spike intervals, plain LIF:    {plain_isi}")
    print(f"inter-spike intervals, adaptive LIF: {adaptive_isi}")

    # 2. gradients through the adaptive neurons: fit the firing rate of a layer
    layer, neuron = nn.Linear(8, 32), adaptive_lif(compile=args.compile)
    optimiser = torch.optim.Adam(layer.parameters(), lr=0.05)
    inputs = torch.rand(20, 16, 8) * 2.0  # [T, B, features]
    rates = []
    for _ in range(args.train_steps):
        reset(neuron)
        rate = neuron(layer(inputs)).mean()
        loss = (rate - args.target_rate) ** 2
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        rates.append(float(rate.detach()))
    print(f"firing rate: {rates[0]:.3f} at the start, {rates[-1]:.3f} after {args.train_steps} steps "
          f"(target {args.target_rate})")
    return {"adaptive_isi": adaptive_isi, "plain_isi": plain_isi, "rates": rates}


if __name__ == "__main__":
    main()
