"""Shared helpers of the conversion tests: one thread, and batch norm with measured statistics."""
from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import Tensor, nn


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # one thread: on a shared machine, OpenMP threads that wait on each other cost more than they gain
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomise_batch_norm(model: nn.Module, shape: tuple[int, ...], seed: int,
                         run: Callable[[nn.Module, Tensor], object] = lambda m, x: m(x)) -> nn.Module:
    """Running statistics measured on 16 random images of ``shape`` (training mode, cumulative
    average; ``run`` feeds them, e.g. repeated over time), then random affine parameters; returns
    the model in evaluation mode."""
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        run(model, torch.randn(16, *shape, generator=gen))
        for bn in bns:
            bn.weight.copy_(torch.rand(bn.num_features, generator=gen) * 0.5 + 0.75)
            bn.bias.copy_(torch.randn(bn.num_features, generator=gen) * 0.2)
    return model.eval()
