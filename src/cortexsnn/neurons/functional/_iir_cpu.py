"""Compiled CPU kernels (C++/OpenMP, built on first use) for the IIR filters and the reset-trace neuron.

Each kernel runs the whole time loop in one call (time outer, elements inner, elements split among
OpenMP threads), forward and backward, instead of a few tensor operations per time step. They
compute exactly the recurrences of :mod:`cortexsnn.neurons.functional.iir` and are checked against
its plain autograd loops. The extension is compiled with ``torch.utils.cpp_extension`` into
torch's extension cache (``TORCH_EXTENSIONS_DIR``) on first use; when no compiler is available,
or ``CORTEXSNN_IIR_KERNEL=0``, :func:`kernels` returns ``None`` and the Python implementations run.
"""
from __future__ import annotations

import os
import threading
import warnings

__all__ = ["kernels"]

_SOURCE = r"""
#include <torch/extension.h>
#include <cmath>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

static const int64_t CHUNK = 2048;

template <typename F>
static void parallel_chunks(int64_t n, F fn) {
  int64_t chunks = (n + CHUNK - 1) / CHUNK;
  #pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t lo = c * CHUNK, hi = std::min(n, lo + CHUNK);
    fn(lo, hi);
  }
}

// ---------------------------------------------------------------- reset-trace neuron
std::vector<torch::Tensor> neuron_forward(torch::Tensor current, torch::Tensor v0, torch::Tensor r0,
                                          double threshold, double d, double m) {
  auto T = current.size(0), M = current.numel() / std::max<int64_t>(T, 1);
  auto spikes = torch::empty_like(current), pot = torch::empty_like(current);
  auto v_last = v0.clone(), r_last = r0.clone();
  AT_DISPATCH_FLOATING_TYPES(current.scalar_type(), "neuron_forward", [&] {
    const scalar_t* I = current.data_ptr<scalar_t>();
    scalar_t* S = spikes.data_ptr<scalar_t>(); scalar_t* P = pot.data_ptr<scalar_t>();
    scalar_t* V = v_last.data_ptr<scalar_t>(); scalar_t* R = r_last.data_ptr<scalar_t>();
    const scalar_t th = threshold, dd = d, mm = m;
    parallel_chunks(M, [&](int64_t lo, int64_t hi) {
      for (int64_t t = 0; t < T; ++t) {
        const scalar_t* It = I + t * M; scalar_t* St = S + t * M; scalar_t* Pt = P + t * M;
        _Pragma("omp simd")
        for (int64_t i = lo; i < hi; ++i) {
          scalar_t v = mm * V[i] + It[i] - R[i];
          scalar_t s = v >= th ? scalar_t(1) : scalar_t(0);
          R[i] = dd * R[i] + s; V[i] = v; Pt[i] = v; St[i] = s;
        }
      }
    });
  });
  return {spikes, pot, v_last, r_last};
}

std::vector<torch::Tensor> neuron_backward(torch::Tensor grad_spikes, torch::Tensor pot, torch::Tensor grad_v_last,
                                           torch::Tensor grad_r_last, double threshold, double d, double m, double sigma) {
  auto T = pot.size(0), M = pot.numel() / std::max<int64_t>(T, 1);
  auto grad_current = torch::empty_like(pot);
  auto cv = grad_v_last.clone(), cr = grad_r_last.clone();
  AT_DISPATCH_FLOATING_TYPES(pot.scalar_type(), "neuron_backward", [&] {
    const scalar_t* G = grad_spikes.data_ptr<scalar_t>(); const scalar_t* P = pot.data_ptr<scalar_t>();
    scalar_t* GI = grad_current.data_ptr<scalar_t>(); scalar_t* CV = cv.data_ptr<scalar_t>(); scalar_t* CR = cr.data_ptr<scalar_t>();
    const scalar_t th = threshold, dd = d, mm = m;
    const scalar_t inv2s2 = scalar_t(1) / (2 * sigma * sigma), norm = scalar_t(1) / (std::sqrt(2 * M_PI) * sigma);
    parallel_chunks(M, [&](int64_t lo, int64_t hi) {
      for (int64_t t = T - 1; t >= 0; --t) {
        const scalar_t* Gt = G + t * M; const scalar_t* Pt = P + t * M; scalar_t* GIt = GI + t * M;
        _Pragma("omp simd")
        for (int64_t i = lo; i < hi; ++i) {
          scalar_t x = Pt[i] - th;
          scalar_t sg = std::exp(-x * x * inv2s2) * norm;
          scalar_t gv = (Gt[i] + CR[i]) * sg + CV[i];
          GIt[i] = gv;
          CR[i] = dd * CR[i] - gv;
          CV[i] = mm * gv;
        }
      }
    });
  });
  return {grad_current, cv, cr};
}

// ---------------------------------------------------------------- PSP filters, x [T, B, C, R]
// p[t] = a1 p[t-1] + a2 p[t-2] + b x[t] per element, coefficients per channel c
torch::Tensor dual_exp_forward(torch::Tensor x, torch::Tensor a1, torch::Tensor a2, torch::Tensor b) {
  auto T = x.size(0), B = x.size(1), C = x.size(2), R = x.size(3), M = B * C * R;
  auto out = torch::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dual_exp_forward", [&] {
    const scalar_t* X = x.data_ptr<scalar_t>(); scalar_t* O = out.data_ptr<scalar_t>();
    const scalar_t* A1 = a1.data_ptr<scalar_t>(); const scalar_t* A2 = a2.data_ptr<scalar_t>(); const scalar_t* Bc = b.data_ptr<scalar_t>();
    parallel_chunks(M, [&](int64_t lo, int64_t hi) {
      std::vector<scalar_t> p1(hi - lo, 0), p2(hi - lo, 0), c1(hi - lo), c2(hi - lo), cb(hi - lo);
      for (int64_t i = lo; i < hi; ++i) { int64_t c = (i / R) % C; c1[i - lo] = A1[c]; c2[i - lo] = A2[c]; cb[i - lo] = Bc[c]; }
      for (int64_t t = 0; t < T; ++t) {
        const scalar_t* Xt = X + t * M; scalar_t* Ot = O + t * M;
        _Pragma("omp simd")
        for (int64_t i = lo; i < hi; ++i) {
          int64_t k = i - lo;
          scalar_t p = c1[k] * p1[k] + c2[k] * p2[k] + cb[k] * Xt[i];
          p2[k] = p1[k]; p1[k] = p; Ot[i] = p;
        }
      }
    });
  });
  return out;
}

// returns grad_x [T,B,C,R] and per-element sums (for a1, a2, b) of shape [3, B, C, R]
std::vector<torch::Tensor> dual_exp_backward(torch::Tensor grad_out, torch::Tensor x, torch::Tensor out,
                                             torch::Tensor a1, torch::Tensor a2, torch::Tensor b) {
  auto T = x.size(0), B = x.size(1), C = x.size(2), R = x.size(3), M = B * C * R;
  auto grad_x = torch::empty_like(x);
  auto sums = torch::zeros({3, B, C, R}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dual_exp_backward", [&] {
    const scalar_t* G = grad_out.data_ptr<scalar_t>(); const scalar_t* X = x.data_ptr<scalar_t>(); const scalar_t* O = out.data_ptr<scalar_t>();
    const scalar_t* A1 = a1.data_ptr<scalar_t>(); const scalar_t* A2 = a2.data_ptr<scalar_t>(); const scalar_t* Bc = b.data_ptr<scalar_t>();
    scalar_t* GX = grad_x.data_ptr<scalar_t>(); scalar_t* S = sums.data_ptr<scalar_t>();
    parallel_chunks(M, [&](int64_t lo, int64_t hi) {
      int64_t n = hi - lo;
      std::vector<scalar_t> l1(n, 0), l2(n, 0), c1(n), c2(n), cb(n), s1(n, 0), s2(n, 0), sb(n, 0);
      for (int64_t i = lo; i < hi; ++i) { int64_t c = (i / R) % C; c1[i - lo] = A1[c]; c2[i - lo] = A2[c]; cb[i - lo] = Bc[c]; }
      for (int64_t t = T - 1; t >= 0; --t) {
        const scalar_t* Gt = G + t * M; const scalar_t* Xt = X + t * M; scalar_t* GXt = GX + t * M;
        const scalar_t* Op1 = t >= 1 ? O + (t - 1) * M : nullptr; const scalar_t* Op2 = t >= 2 ? O + (t - 2) * M : nullptr;
        for (int64_t i = lo; i < hi; ++i) {
          int64_t k = i - lo;
          scalar_t lam = Gt[i] + c1[k] * l1[k] + c2[k] * l2[k];
          l2[k] = l1[k]; l1[k] = lam;
          GXt[i] = lam * cb[k];
          sb[k] += lam * Xt[i];
          if (Op1) s1[k] += lam * Op1[i];
          if (Op2) s2[k] += lam * Op2[i];
        }
      }
      for (int64_t k = 0; k < n; ++k) { S[lo + k] = s1[k]; S[M + lo + k] = s2[k]; S[2 * M + lo + k] = sb[k]; }
    });
  });
  return {grad_x, sums};
}

// p[t] = alpha p[t-1] + x[t]
torch::Tensor first_order_forward(torch::Tensor x, torch::Tensor alpha) {
  auto T = x.size(0), B = x.size(1), C = x.size(2), R = x.size(3), M = B * C * R;
  auto out = torch::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "first_order_forward", [&] {
    const scalar_t* X = x.data_ptr<scalar_t>(); scalar_t* O = out.data_ptr<scalar_t>(); const scalar_t* A = alpha.data_ptr<scalar_t>();
    parallel_chunks(M, [&](int64_t lo, int64_t hi) {
      std::vector<scalar_t> p(hi - lo, 0), ca(hi - lo);
      for (int64_t i = lo; i < hi; ++i) ca[i - lo] = A[(i / R) % C];
      for (int64_t t = 0; t < T; ++t) {
        const scalar_t* Xt = X + t * M; scalar_t* Ot = O + t * M;
        _Pragma("omp simd")
        for (int64_t i = lo; i < hi; ++i) { int64_t k = i - lo; p[k] = ca[k] * p[k] + Xt[i]; Ot[i] = p[k]; }
      }
    });
  });
  return out;
}

std::vector<torch::Tensor> first_order_backward(torch::Tensor grad_out, torch::Tensor out, torch::Tensor alpha) {
  auto T = out.size(0), B = out.size(1), C = out.size(2), R = out.size(3), M = B * C * R;
  auto grad_x = torch::empty_like(out);
  auto sums = torch::zeros({B, C, R}, out.options());
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "first_order_backward", [&] {
    const scalar_t* G = grad_out.data_ptr<scalar_t>(); const scalar_t* O = out.data_ptr<scalar_t>(); const scalar_t* A = alpha.data_ptr<scalar_t>();
    scalar_t* GX = grad_x.data_ptr<scalar_t>(); scalar_t* S = sums.data_ptr<scalar_t>();
    parallel_chunks(M, [&](int64_t lo, int64_t hi) {
      int64_t n = hi - lo;
      std::vector<scalar_t> l(n, 0), ca(n), s(n, 0);
      for (int64_t i = lo; i < hi; ++i) ca[i - lo] = A[(i / R) % C];
      for (int64_t t = T - 1; t >= 0; --t) {
        const scalar_t* Gt = G + t * M; scalar_t* GXt = GX + t * M;
        const scalar_t* Op = t >= 1 ? O + (t - 1) * M : nullptr;
        for (int64_t i = lo; i < hi; ++i) {
          int64_t k = i - lo;
          l[k] = Gt[i] + ca[k] * l[k];
          GXt[i] = l[k];
          if (Op) s[k] += l[k] * Op[i];
        }
      }
      for (int64_t k = 0; k < n; ++k) S[lo + k] = s[k];
    });
  });
  return {grad_x, sums};
}
"""

_FUNCTIONS = [
    "neuron_forward",
    "neuron_backward",
    "dual_exp_forward",
    "dual_exp_backward",
    "first_order_forward",
    "first_order_backward",
]

_lock = threading.Lock()
_state: dict[str, object] = {}


def kernels():
    """The compiled extension module, or ``None`` when it is disabled or cannot be built."""
    if "module" in _state:
        return _state["module"]
    with _lock:
        if "module" in _state:
            return _state["module"]
        module = None
        if os.environ.get("CORTEXSNN_IIR_KERNEL", "1") != "0":
            try:
                from torch.utils.cpp_extension import load_inline

                module = load_inline(
                    name="cortexsnn_iir_cpu_v1",
                    cpp_sources=_SOURCE,
                    functions=_FUNCTIONS,
                    extra_cflags=["-O3", "-fopenmp"],
                    extra_ldflags=["-fopenmp"],
                    verbose=False,
                )
            except Exception as exc:  # no compiler, no headers: the Python path is exact too
                warnings.warn(
                    f"cortexsnn: the compiled IIR kernels could not be built ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); using the slower PyTorch implementation",
                    RuntimeWarning,
                    stacklevel=2,
                )
                module = None
        _state["module"] = module
        return module
