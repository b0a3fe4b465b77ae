"""Batched spike operations on first-spike latencies (see :mod:`cortexsnn.encoding`).

Every function works on a batch of images at once. Latencies are integer tensors
``[B, C, H, W]`` with ``T`` meaning "never"; potentials are time-major ``[T, B, F, H, W]``.
The semantics are SpykeTorch's (``spec/plasticity.md``): non-leaky integrate-and-fire with
cumulative input waves, at most one spike per neuron.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cortexsnn.encoding import LATENCY_DTYPE

__all__ = [
    "pad_latencies",
    "spike_pool",
    "conv_potentials",
    "conv_fire",
    "conv_fire_pool",
    "conv_fire_values",
    "inhibit_pointwise",
    "last_step_potentials",
    "fire",
    "thresholded_potentials",
    "pointwise_inhibition",
    "values_at_first_spike",
    "k_winners",
    "decision_winners",
    "stdp_winners",
    "conv_stdp_winners",
    "lateral_intensity_inhibition",
    "receptive_field_latencies",
]


def pad_latencies(latencies: torch.Tensor, padding: int, time_steps: int) -> torch.Tensor:
    """Zero-pad spike maps: padded neurons never spike (latency ``T``)."""
    if padding == 0:
        return latencies
    return F.pad(latencies, (padding,) * 4, value=time_steps)


def spike_pool(latencies: torch.Tensor, kernel: int, stride: int | None = None) -> torch.Tensor:
    """Spike max-pooling: every window passes its earliest spike (min of latencies).

    Windows are placed as by ``max_pool2d`` (floor mode), stride = kernel by default.
    """
    pooled = -F.max_pool2d(-latencies.to(torch.float32), kernel, stride if stride is not None else kernel)
    return pooled.to(latencies.dtype)


def _check_conv_input(latencies: torch.Tensor, weight: torch.Tensor) -> None:
    if latencies.dim() != 4:
        raise ValueError(f"spike maps must be [B, C, H, W] latencies, got shape {tuple(latencies.shape)}")
    if latencies.shape[1] != weight.shape[1]:
        raise ValueError(
            f"spike maps have {latencies.shape[1]} channels but the convolution expects {weight.shape[1]}"
        )
    if latencies.shape[-1] < weight.shape[-1] or latencies.shape[-2] < weight.shape[-2]:
        raise ValueError(
            f"spike maps {tuple(latencies.shape[-2:])} are smaller than the kernel {tuple(weight.shape[-2:])}"
        )


def _kernel_for(latencies: torch.Tensor, weight: torch.Tensor, method: str):
    """The compiled event-driven kernel when ``method`` allows it for these tensors, else None."""
    if method not in ("auto", "event", "dense"):
        raise ValueError(f"method must be 'auto', 'event' or 'dense', got {method!r}")
    if method == "dense":
        return None
    usable = latencies.device.type == "cpu" and weight.dtype in (torch.float32, torch.float64)
    from cortexsnn.plasticity.kernels import spike_conv_kernel

    lib = spike_conv_kernel() if usable else None
    if lib is None and method == "event":
        raise RuntimeError("the event-driven kernel needs CPU float tensors and a C compiler; use method='dense'")
    return lib


_POOLS: dict = {}


def _pool(workers: int):
    from concurrent.futures import ThreadPoolExecutor

    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cortexsnn-spikeconv")
    return _POOLS[workers]


def _run_kernel(lib, latencies: torch.Tensor, weight: torch.Tensor, time_steps: int, mode: int, threshold: float = 0.0):
    import ctypes

    b, c, h, w = latencies.shape
    f, _, kh, kw = weight.shape
    ho, wo = h - kh + 1, w - kw + 1
    lat = latencies.to(torch.uint8).contiguous()
    table = weight.permute(1, 2, 3, 0).contiguous()  # [C, kh, kw, F]
    if mode == 0:
        out = torch.empty(b, ho, wo, time_steps, f, dtype=weight.dtype)
    elif mode in (1, 3):
        out = torch.empty(b, f, ho, wo, dtype=torch.uint8)
    else:
        out = torch.empty(b, ho, wo, f, dtype=weight.dtype)
    values = torch.empty(b, f, ho, wo, dtype=weight.dtype) if mode == 3 else None
    fn = lib.spike_conv_f32 if weight.dtype == torch.float32 else lib.spike_conv_f64
    args = (ctypes.c_void_p(lat.data_ptr()), ctypes.c_void_p(table.data_ptr()), ctypes.c_void_p(out.data_ptr()),
            ctypes.c_void_p(values.data_ptr() if values is not None else None),
            b, c, h, w, f, kh, kw, time_steps, mode, float(threshold))
    n_pos = b * ho * wo
    # ctypes releases the GIL: split the positions over a thread pool of torch's thread count
    workers = min(torch.get_num_threads(), max(1, n_pos * c * kh * kw * f // 2_000_000))
    _split(fn, args, n_pos, workers)
    return out if values is None else (out, values)


def _split(fn, args: tuple, n: int, workers: int) -> None:
    """Call the kernel ``fn(*args, begin, end)`` on ``workers`` slices of ``[0, n)`` (ctypes releases
    the GIL, so a thread pool runs them in parallel); a kernel returning -1 ran out of memory."""
    if workers <= 1:
        codes = [fn(*args, 0, n)]
    else:
        bounds = [n * i // workers for i in range(workers + 1)]
        codes = list(_pool(workers).map(lambda i: fn(*args, bounds[i], bounds[i + 1]), range(workers)))
    if any(code is not None and code < 0 for code in codes):
        raise MemoryError("the spike convolution kernel could not allocate its workspace")


def conv_potentials(latencies: torch.Tensor, weight: torch.Tensor, time_steps: int, method: str = "auto") -> torch.Tensor:
    """Potentials ``[T, B, F, Ho, Wo]`` of a stride-1, unpadded convolution of cumulative waves.

    ``potential[t] = conv2d(latency <= t, weight)``.

    ``method="event"`` uses the compiled event-driven kernel: each input spike is added once, at
    its own step, then the increments are summed over time, so the cost is at most one dense
    convolution instead of ``T``. ``"dense"`` convolves the ``T * B`` wave frames at once
    (any device). ``"auto"`` takes the kernel when it is available for these tensors. Both give
    the same potentials up to float summation order.
    """
    _check_conv_input(latencies, weight)
    lib = _kernel_for(latencies, weight, method)
    if lib is not None:
        return _run_kernel(lib, latencies, weight, time_steps, 0).permute(3, 0, 4, 1, 2)
    b = latencies.shape[0]
    steps = torch.arange(time_steps, device=latencies.device).view(-1, 1, 1, 1, 1)
    frames = (latencies.unsqueeze(0).long() <= steps).to(weight.dtype).flatten(0, 1)
    out = F.conv2d(frames, weight)
    return out.view(time_steps, b, *out.shape[1:])


def conv_fire(latencies: torch.Tensor, weight: torch.Tensor, time_steps: int, threshold: float,
              method: str = "auto") -> torch.Tensor:
    """Output latencies of a thresholded convolution, without keeping the potentials.

    Same result as ``fire(conv_potentials(...), threshold)``; the kernel path never stores the
    ``[T, B, F, Ho, Wo]`` potentials.
    """
    _check_conv_input(latencies, weight)
    lib = _kernel_for(latencies, weight, method)
    if lib is not None:
        return _run_kernel(lib, latencies, weight, time_steps, 1, threshold)
    return fire(conv_potentials(latencies, weight, time_steps, "dense"), threshold)


def conv_fire_pool(latencies: torch.Tensor, weight: torch.Tensor, time_steps: int, threshold: float, pool: int,
                   method: str = "auto") -> torch.Tensor:
    """A thresholded convolution followed by spike pooling (window and stride ``pool``): the same
    result as ``spike_pool(conv_fire(...), pool)``.

    The kernel path computes each pooling window's positions one after the other, each only as
    far as it could still fire a feature earlier than the window's earliest spike so far.
    """
    _check_conv_input(latencies, weight)
    lib = _kernel_for(latencies, weight, method)
    if lib is None:
        return spike_pool(conv_fire(latencies, weight, time_steps, threshold, method), pool)
    import ctypes

    b, c, h, w = latencies.shape
    f, _, kh, kw = weight.shape
    hp, wp = (h - kh + 1) // pool, (w - kw + 1) // pool
    lat = latencies.to(torch.uint8).contiguous()
    table = weight.permute(1, 2, 3, 0).contiguous()  # [C, kh, kw, F]
    out = torch.empty(b, f, hp, wp, dtype=torch.uint8)
    fn = lib.spike_fire_pool_f32 if weight.dtype == torch.float32 else lib.spike_fire_pool_f64
    args = (ctypes.c_void_p(lat.data_ptr()), ctypes.c_void_p(table.data_ptr()), ctypes.c_void_p(out.data_ptr()),
            c, h, w, f, kh, kw, time_steps, float(threshold), pool)
    _split(fn, args, b * hp * wp, 1)  # the kernel shares the windows among PyTorch's OpenMP threads itself
    return out


def conv_fire_values(latencies: torch.Tensor, weight: torch.Tensor, time_steps: int, threshold: float,
                     method: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Output latencies and the potential at each neuron's first spike (0 if silent), ``[B, F, Ho, Wo]``.

    All that pointwise inhibition, k-WTA and STDP need of a thresholded layer: the potentials
    ``[T, B, F, Ho, Wo]`` are never stored on the kernel path.
    """
    _check_conv_input(latencies, weight)
    lib = _kernel_for(latencies, weight, method)
    if lib is not None:
        return _run_kernel(lib, latencies, weight, time_steps, 3, threshold)
    potentials = conv_potentials(latencies, weight, time_steps, "dense")
    lat = fire(potentials, threshold)
    values = values_at_first_spike(potentials, lat)
    return lat, torch.where(lat.long() < time_steps, values, torch.zeros((), dtype=values.dtype))


def inhibit_pointwise(latencies: torch.Tensor, values: torch.Tensor, time_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pointwise inhibition from latencies and first-spike potentials (same result as
    :func:`pointwise_inhibition`): at each position the earliest features compete, the highest
    potential (then the first feature) wins; every other feature is silenced."""
    lat = latencies.long()
    earliest = lat.min(dim=1, keepdim=True).values
    candidates = (lat == earliest) & (earliest < time_steps)
    score = torch.where(candidates, values, torch.full((), -1.0, dtype=values.dtype))
    winner = score.argmax(dim=1, keepdim=True)
    keep = torch.zeros_like(candidates).scatter_(1, winner, True) & candidates
    return (torch.where(keep, latencies, torch.full_like(latencies, time_steps)),
            torch.where(keep, values, torch.zeros((), dtype=values.dtype)))


def last_step_potentials(latencies: torch.Tensor, weight: torch.Tensor, time_steps: int, method: str = "auto") -> torch.Tensor:
    """Potentials ``[B, F, Ho, Wo]`` at the last step only (one convolution of ``latency < T``)."""
    _check_conv_input(latencies, weight)
    lib = _kernel_for(latencies, weight, method)
    if lib is not None:
        return _run_kernel(lib, latencies, weight, time_steps, 2).permute(0, 3, 1, 2)
    fired = (latencies < time_steps).to(weight.dtype).contiguous(memory_format=torch.channels_last)
    return F.conv2d(fired, weight)  # channels-last: the faster CPU convolution for these shapes


def fire(potentials: torch.Tensor, threshold: float) -> torch.Tensor:
    """First-spike latencies ``[B, F, H, W]`` of neurons whose potential exceeds ``threshold``.

    A neuron spikes at the first step where ``potential > threshold``; ``T`` if never.
    """
    time_steps = potentials.shape[0]
    crossed = potentials > threshold
    first = crossed.to(torch.uint8).argmax(dim=0)
    return torch.where(crossed.any(dim=0), first, time_steps).to(LATENCY_DTYPE)


def thresholded_potentials(potentials: torch.Tensor, threshold: float) -> torch.Tensor:
    """Potentials where above ``threshold``, else 0 (SpykeTorch's thresholded potentials)."""
    return torch.where(potentials > threshold, potentials, torch.zeros((), dtype=potentials.dtype))


def values_at_first_spike(potentials: torch.Tensor, latencies: torch.Tensor) -> torch.Tensor:
    """``potentials[latency]`` per neuron (the last step for silent ones): ``[B, F, H, W]``."""
    time_steps = potentials.shape[0]
    index = latencies.long().clamp(max=time_steps - 1).unsqueeze(0)
    return potentials.gather(0, index).squeeze(0)


def pointwise_inhibition(thr_potentials: torch.Tensor, latencies: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep, at each position, only the feature with the earliest spike (ties: highest potential).

    Args:
        thr_potentials: thresholded potentials ``[T, B, F, H, W]``.
        latencies: their first-spike latencies ``[B, F, H, W]``.

    Returns:
        ``(potentials, latencies)`` with every other feature silenced (potential 0, latency T).
    """
    time_steps = thr_potentials.shape[0]
    earliest = latencies.long().min(dim=1, keepdim=True).values  # [B, 1, H, W]
    at_earliest = thr_potentials.gather(0, earliest.clamp(max=time_steps - 1).unsqueeze(0).expand(1, *latencies.shape)).squeeze(0)
    winner = at_earliest.argmax(dim=1, keepdim=True)  # first feature among equal potentials
    keep = torch.zeros_like(latencies, dtype=torch.bool).scatter_(1, winner, True) & (earliest < time_steps)
    return thr_potentials * keep, torch.where(keep, latencies, torch.full_like(latencies, time_steps))


def k_winners(
    latencies: torch.Tensor, values: torch.Tensor, k: int, radius: int, time_steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """k-winners-take-all with inhibition radius, batched over images (SpykeTorch's ``get_k_winners``).

    Score of a spiking neuron: ``(T - latency) * (value + v)`` with ``value`` its potential at its
    first spike and ``v = T * max(values)`` of the image, i.e. the sum over its spiking steps of
    ``value + v``: earlier spikes win, the potential breaks ties. ``k`` rounds of a global argmax
    (first index among equal scores); each winner zeroes its whole feature map and every feature
    within the ``(2 radius + 1)^2`` square around it. A round with no positive score ends the search.

    Args:
        latencies: ``[B, F, H, W]``.
        values: potentials at the first spike ``[B, F, H, W]`` (non-negative).

    Returns:
        ``winners [B, k, 3]`` (feature, row, column; long) and ``valid [B, k]`` (bool).
    """
    b, f, h, w = latencies.shape
    spiking = latencies.long() < time_steps
    truncated = torch.where(spiking, values, torch.zeros((), dtype=values.dtype))
    v = truncated.flatten(1).max(dim=1).values.view(b, 1, 1, 1) * time_steps
    steps = (time_steps - latencies.long()).clamp(min=0).to(values.dtype)
    total = torch.where(spiking, (truncated + v) * steps, torch.zeros((), dtype=values.dtype)).reshape(b, -1)
    winners = torch.zeros(b, k, 3, dtype=torch.long, device=latencies.device)
    valid = torch.zeros(b, k, dtype=torch.bool, device=latencies.device)
    rows = torch.arange(h, device=latencies.device).view(1, h, 1)
    cols = torch.arange(w, device=latencies.device).view(1, 1, w)
    batch_index = torch.arange(b, device=latencies.device)
    for i in range(k):
        index = total.argmax(dim=1)  # first index among equal scores
        best = total.gather(1, index.unsqueeze(1)).squeeze(1)
        feature, pos = index // (h * w), index % (h * w)
        row, col = pos // w, pos % w
        winners[:, i, 0], winners[:, i, 1], winners[:, i, 2] = feature, row, col
        valid[:, i] = best > 0
        total3 = total.view(b, f, h * w)
        total3[batch_index, feature] = 0
        if radius > 0:
            square = ((rows - row.view(b, 1, 1)).abs() <= radius) & ((cols - col.view(b, 1, 1)).abs() <= radius)
            total.view(b, f, h, w).masked_fill_(square.unsqueeze(1), 0)
    if k > 0:
        # after the first empty round Mozafari et al.'s code stops: later rounds can only find zeros too
        valid = valid.cumprod(dim=1).bool()
    return winners, valid


def stdp_winners(latencies: torch.Tensor, values: torch.Tensor, k: int, radius: int, time_steps: int,
                 pointwise: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pointwise inhibition (optional) then k-WTA, fused: ``(winners [B, k, 3], winner latency
    [B, k], valid [B, k])``. Same winners as :func:`inhibit_pointwise` + :func:`k_winners`; the
    compiled kernel handles one image in a single pass (no per-round tensor operations)."""
    from cortexsnn.plasticity.kernels import spike_conv_kernel

    b, f, h, w = latencies.shape
    lib = spike_conv_kernel() if (latencies.device.type == "cpu" and values.dtype in (torch.float32, torch.float64)) else None
    if lib is None:
        lat, val = inhibit_pointwise(latencies, values, time_steps) if pointwise else (latencies, values)
        winners, valid = k_winners(lat, val, k, radius, time_steps)
        bi = torch.arange(b, device=lat.device).view(-1, 1)
        return winners, lat[bi, winners[..., 0], winners[..., 1], winners[..., 2]].long(), valid
    import ctypes

    lat = latencies.to(torch.uint8).contiguous()
    val = values.contiguous()
    winners = torch.zeros(b, k, 3, dtype=torch.long)
    winner_lat = torch.zeros(b, k, dtype=torch.long)
    valid = torch.zeros(b, k, dtype=torch.uint8)
    fn = lib.stdp_winners_f32 if val.dtype == torch.float32 else lib.stdp_winners_f64
    args = (ctypes.c_void_p(lat.data_ptr()), ctypes.c_void_p(val.data_ptr()), b, f, h, w, time_steps, k, radius,
            int(pointwise), ctypes.c_void_p(winners.data_ptr()), ctypes.c_void_p(winner_lat.data_ptr()),
            ctypes.c_void_p(valid.data_ptr()))
    _split(fn, args, b, min(torch.get_num_threads(), b))
    return winners, winner_lat, valid.bool()


def conv_stdp_winners(latencies: torch.Tensor, weight: torch.Tensor, time_steps: int, threshold: float, k: int,
                      radius: int, method: str = "auto") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """STDP's winners of a thresholded convolution straight from its input latencies: the same
    ``(winners [B, k, 3], winner latency [B, k], valid [B, k])`` as :func:`conv_fire_values`
    followed by :func:`stdp_winners` (pointwise inhibition, then k-WTA).

    The compiled kernel never builds the ``[B, F, Ho, Wo]`` maps: pointwise inhibition keeps, at
    each position, only features that fire at that position's earliest step, so the summation
    of a position stops after that step (bit-identical results, with the same sums in the same
    order).
    """
    _check_conv_input(latencies, weight)
    lib = _kernel_for(latencies, weight, method)
    if lib is None or threshold < 0:
        lat, values = conv_fire_values(latencies, weight, time_steps, threshold, method)
        return stdp_winners(lat, values, k, radius, time_steps)
    import ctypes

    b, c, h, w = latencies.shape
    f, _, kh, kw = weight.shape
    lat = latencies.to(torch.uint8).contiguous()
    table = weight.permute(1, 2, 3, 0).contiguous()  # [C, kh, kw, F]
    winners = torch.zeros(b, k, 3, dtype=torch.long)
    winner_lat = torch.zeros(b, k, dtype=torch.long)
    valid = torch.zeros(b, k, dtype=torch.uint8)
    fn = lib.stdp_conv_winners_f32 if weight.dtype == torch.float32 else lib.stdp_conv_winners_f64
    ptr = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731
    args = (ptr(lat), ptr(table), b, c, h, w, f, kh, kw, time_steps, float(threshold), k, radius, 1, ptr(winners),
            ptr(winner_lat), ptr(valid))
    _split(fn, args, b, 1)  # the kernel shares the images among PyTorch's OpenMP threads itself
    return winners, winner_lat, valid.bool()


def decision_winners(last_potentials: torch.Tensor, time_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The decision neuron of each image: largest potential at the last step (no threshold).

    Same score as :func:`k_winners` with ``k=1`` for neurons that spike only at the last step.

    Returns:
        ``winner [B, 3]`` (feature, row, column) and ``valid [B]`` (False when no potential > 0).
    """
    b, f, h, w = last_potentials.shape
    spiking = last_potentials > 0
    truncated = torch.where(spiking, last_potentials, torch.zeros((), dtype=last_potentials.dtype))
    v = truncated.flatten(1).max(dim=1).values.view(b, 1, 1, 1) * time_steps
    total = torch.where(spiking, truncated + v, torch.zeros((), dtype=last_potentials.dtype)).reshape(b, -1)
    index = total.argmax(dim=1)
    best = total.gather(1, index.unsqueeze(1)).squeeze(1)
    pos = index % (h * w)
    winner = torch.stack([index // (h * w), pos // w, pos % w], dim=1)
    return winner, best > 0


def receptive_field_latencies(latencies: torch.Tensor, winners: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """Input latencies in the receptive fields of winners.

    Args:
        latencies: (padded) input latencies ``[B, C, H, W]``.
        winners: ``[B, K, 3]`` (feature, row, column) in output coordinates.

    Returns:
        ``[B, K, C, kh, kw]``.
    """
    b, c = latencies.shape[:2]
    kh, kw = kernel
    dev = latencies.device
    bi = torch.arange(b, device=dev).view(b, 1, 1, 1, 1)
    ci = torch.arange(c, device=dev).view(1, 1, c, 1, 1)
    ri = winners[:, :, 1].view(b, -1, 1, 1, 1) + torch.arange(kh, device=dev).view(1, 1, 1, kh, 1)
    qi = winners[:, :, 2].view(b, -1, 1, 1, 1) + torch.arange(kw, device=dev).view(1, 1, 1, 1, kw)
    return latencies[bi, ci, ri, qi]


def lateral_intensity_inhibition(intensities: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Lateral intensity inhibition (SpykeTorch's ``intensity_lateral_inhibition``), batched.

    Each value is scaled by ``1 + sum_n kernel[n] * [neighbour n is stronger]`` over the kernel's
    window (centred, same channel); with a non-positive kernel, stronger neighbours inhibit.

    Args:
        intensities: ``[B, C, H, W]``.
        kernel: ``[S, S]`` with ``S`` odd.
    """
    if kernel.dim() != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise ValueError(f"the inhibition kernel must be square with odd size, got {tuple(kernel.shape)}")
    b, c, h, w = intensities.shape
    size = kernel.shape[0]
    rad = size // 2
    flat = intensities.reshape(b * c, 1, h, w)
    neighbours = F.unfold(F.pad(flat, (rad,) * 4), size).view(b * c, size * size, h * w)
    stronger = (neighbours > flat.view(b * c, 1, h * w)).to(intensities.dtype)
    factors = torch.einsum("n,bnl->bl", kernel.reshape(-1).to(intensities.dtype), stronger)
    return (flat.view(b * c, h * w) * (1 + factors)).view(b, c, h, w)
