#!/usr/bin/env bash
# Fetch, on a developer machine (PyPI reachable), the pure-Python wheels that the GPU machine lacks,
# into .cache/gpu-wheels/ (git-ignored; it travels to the GPU machine only through `carry`).
#
# The GPU machine's image has Python 3.12 with torch, Triton, CuPy, numpy, scipy, pytest, h5py,
# matplotlib, tensorboard and threadpoolctl, but not the reference libraries nor pooch (which
# tests/conftest.py uses when present). All of these are pure Python (py3-none-any), about 3.5 MB:
#   spikingjelly 2.0.0 (+ loguru), snntorch 1.0.0, norse 1.1.0 (+ nir, nirtorch), pooch (+ platformdirs),
# and, in legacy/, spikingjelly 0.0.0.0.14 for its CuPy backend (installed apart: it cannot sit beside 2.0).
# The versions are those of the development venv, so the GPU figures compare the same libraries.
#
#     bash benchmarks/gpu/fetch_wheels.sh      # then see run_gpu_checks.sh for the device call
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.cache/gpu-wheels
rm -rf "$dest"
mkdir -p "$dest/legacy"
PY=${PY:-python3}
target=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64)
"$PY" -m pip download -q "${target[@]}" -d "$dest" \
    spikingjelly==2.0.0 loguru==0.7.3 snntorch==1.0.0 nir==1.0.8 nirtorch==2.6 pooch==1.9.0 platformdirs==4.14.7
# Norse 1.1.0 is published as a source archive only; its build is pure Python (py3-none-any)
"$PY" -m pip wheel -q --no-deps -w "$dest" norse==1.1.0
"$PY" -m pip download -q "${target[@]}" -d "$dest/legacy" spikingjelly==0.0.0.0.14
for wheel in "$dest"/*.whl "$dest"/legacy/*.whl; do
    case "$wheel" in
        *-none-any.whl) ;;
        *) echo "fetch_wheels.sh: $wheel is not pure Python: it would not install on the GPU machine" >&2; exit 1 ;;
    esac
done
ls -l "$dest" "$dest/legacy"
du -sh "$dest"
