#!/usr/bin/env bash
# GPU checks and figures of issue 15 (item 4), in one run of about 6-7 minutes on the lent GPU machine.
#
# What it does, each part under its own time limit, a failing or slow part costing only itself:
#   1. env.txt         nvidia-smi, Python, torch / CUDA / Triton / CuPy versions, the wheels installed;
#   2. pytest.txt      `pytest -m gpu`: the Triton kernels compiled for this GPU against the CPU reference
#                      (tests/neurons/test_triton_gpu.py: spikes identical, gradients to 1e-5 in float32);
#   3. neurons.txt     benchmarks/neurons.py --device cuda: (a) SpikingJelly 2.0's LIF configuration,
#                      (b) the Open Neuromorphic Linear + LIF, then (b) in float16 last (if time is left);
#   4. train_step.txt  benchmarks/train_step.py --device cuda --res 224 (skipped if that option is absent);
#   5. similarity.txt  benchmarks/similarity.py --device cuda (the metrics on the GPU vs the CPU);
#   results.jsonl      every JSON result line of 3-5 (the keys of benchmarks/_common.py's summary_line);
#   summary.txt        one line per part: exit status and seconds (124 = hit its time limit).
# That is 7 files: the device tool brings back at most 8 from $OUT.
#
# What the GPU machine needs. Its image has Python 3.12 with torch (2.11, CUDA 13), Triton, CuPy,
# numpy, scipy, pytest, h5py, matplotlib and tensorboard, and nothing can be fetched there. The
# project's venv cannot go (6 GB, Python 3.11; the working tree that travels is limited to 64 MiB),
# so the project runs from src/ on the image's python3, and the missing pure-Python packages travel
# as wheels (3.5 MB) that this script installs with pip from the carried folder, nothing else:
#
#   here, once (PyPI):   bash benchmarks/gpu/fetch_wheels.sh          # -> .cache/gpu-wheels/ (git-ignored)
#   then the device call (the device tool's `run`, from the repository root):
#       run(command="bash benchmarks/gpu/run_gpu_checks.sh", carry=[".cache/gpu-wheels"], timeout_s=480)
#   (no `kind`: an H100 or an H200 both do; say which card in docs/performance.md, from env.txt)
#
# Without the wheels, the cortexsnn-only parts still run (the GPU tests, cortexsnn's rows, the
# similarity timing) and the other libraries' rows say "failed: No module named ...".
# A rerun of some parts only: GPU_CHECKS_PARTS="neurons-a train_step" (names as in summary.txt).
# GPU_CHECKS_BUDGET (seconds, default 420) bounds the whole script: a part starts with what is
# left, and none starts with less than 20 s. PY (default python3) is the interpreter,
# GPU_CHECKS_WHEELS (default .cache/gpu-wheels) the wheel folder.
set -u -o pipefail
cd "$(dirname "$0")/../.."

OUT=${OUT:-$PWD/gpu-checks-out}
mkdir -p "$OUT"
PY=${PY:-python3}
BUDGET=${GPU_CHECKS_BUDGET:-420}
PARTS=${GPU_CHECKS_PARTS:-"env pytest neurons-a neurons-b train_step similarity neurons-b-fp16"}
START=$(date +%s)
WHEELS=${GPU_CHECKS_WHEELS:-.cache/gpu-wheels}
SITE=/tmp/cortexsnn-gpu-site
export PYTHONUNBUFFERED=1
export CORTEXSNN_CACHE=/tmp/cortexsnn-cache
export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET

wanted() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# part NAME LIMIT_S OUTFILE COMMAND...: run COMMAND under `timeout` (which signals its whole process
# group: the benchmark workers too), its output appended to $OUT/OUTFILE and shown; the JSON result
# lines of this part are added to results.jsonl as soon as it ends
part() {
    local name=$1 limit=$2 file=$OUT/$3
    shift 3
    wanted "$name" || return 0
    local left=$((BUDGET - ($(date +%s) - START)))
    if ((left < 20)); then
        echo "$name: skipped, the ${BUDGET} s budget is spent" | tee -a "$OUT/summary.txt"
        return 0
    fi
    ((limit > left)) && limit=$left
    local t0
    t0=$(date +%s)
    echo "===== $name (limit ${limit} s): $*" | tee -a "$file"
    timeout -k 5 "$limit" "$@" 2>&1 | tee "$TMPD/$name.log" | tee -a "$file"
    local rc=${PIPESTATUS[0]}
    grep -h '^{"benchmark"' "$TMPD/$name.log" >>"$OUT/results.jsonl"
    echo "$name: exit $rc, $(($(date +%s) - t0)) s" | tee -a "$OUT/summary.txt"
}

environment() {
    timeout 20 nvidia-smi
    echo
    timeout 60 "$PY" - <<'PYEOF'
import importlib, platform, sys
import torch
print("python", platform.python_version(), sys.executable)
print("torch", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    print("device", props.name, f"{props.total_memory / 2**30:.1f} GiB", "capability", torch.cuda.get_device_capability(0),
          props.multi_processor_count, "SMs")
for name in ("triton", "cupy", "numpy", "scipy", "spikingjelly", "snntorch", "norse", "pooch", "pytest"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"), module.__file__)
    except Exception as exc:  # report and go on: a missing library costs its own rows only
        print(name, "MISSING:", type(exc).__name__, exc)
PYEOF
    echo "CPUs: $(nproc)"
    gcc --version 2>/dev/null | head -1 || echo "no gcc: the CPU reference of the GPU tests uses the torch path"
}

install_wheels() {
    if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
            "$WHEELS"/*.whl && echo "installed into $SITE: $(ls "$WHEELS" | grep -c whl) wheels"
    else
        echo "no wheels in $WHEELS (run benchmarks/gpu/fetch_wheels.sh here and carry it): reference libraries missing"
    fi
    if ls "$WHEELS"/legacy/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/spikingjelly-legacy "$WHEELS"/legacy/*.whl &&
            export CORTEXSNN_BENCH_SJ_LEGACY=/tmp/spikingjelly-legacy &&
            echo "SpikingJelly 0.0.0.0.14 (CuPy backend) in $CORTEXSNN_BENCH_SJ_LEGACY"
    fi
}

has_option() { "$PY" "$1" --help 2>/dev/null | grep -q -- "$2"; }

: >"$OUT/summary.txt"
: >"$OUT/results.jsonl"
TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT
echo "run_gpu_checks.sh: parts [$PARTS], budget ${BUDGET} s, started $(date -u +%H:%M:%S) UTC" | tee -a "$OUT/summary.txt"
install_wheels >"$TMPD/install.txt" 2>&1  # not in a pipeline: it exports CORTEXSNN_BENCH_SJ_LEGACY
tee -a "$OUT/env.txt" <"$TMPD/install.txt"
if wanted env; then
    environment 2>&1 | tee -a "$OUT/env.txt"
fi
part pytest 120 pytest.txt "$PY" -m pytest -q -rs -m gpu -p no:cacheprovider --continue-on-collection-errors \
    tests/neurons
part neurons-a 120 neurons.txt "$PY" benchmarks/neurons.py --device cuda --only sj2-lif-32x64x65536-fp16 \
    --worker-timeout 90
part neurons-b 130 neurons.txt "$PY" benchmarks/neurons.py --device cuda --only on-linear-lif-500x16x16384 \
    --worker-timeout 90
if has_option benchmarks/train_step.py --device; then
    part train_step 90 train_step.txt "$PY" benchmarks/train_step.py --device cuda --res 224
else
    wanted train_step && echo "train_step: skipped, benchmarks/train_step.py has no --device option in this checkout" |
        tee -a "$OUT/train_step.txt" "$OUT/summary.txt"
fi
part similarity 90 similarity.txt "$PY" benchmarks/similarity.py --device cuda --threads "$(nproc)" --reps 3
part neurons-b-fp16 80 neurons.txt "$PY" benchmarks/neurons.py --device cuda --only on-linear-lif-500x16x16384-fp16 \
    --worker-timeout 60
echo "run_gpu_checks.sh: done in $(($(date +%s) - START)) s; results in $OUT" | tee -a "$OUT/summary.txt"
