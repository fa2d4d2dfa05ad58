#!/usr/bin/env bash
# The CUDA target on a GPU, in one go (a few minutes): every sample's CUDA-target Model
# against its numpy target (forward and all gradients, float32 and float64), the NVRTC disk
# cache (a second process compiles nothing), then the benchmark against PyTorch CUDA eager
# (the tutorial LSTM cell at batch 1, the cell 128->128 at batch 32, LeNet at batch 64; each also
# as a CUDA-graph step).
#
#   tests/gpu/run.sh            # needs CuPy (cupy-cuda12x/13x) and, for the benchmark, torch with CUDA
#   tests/gpu/run.sh --no-bench
set -euo pipefail
cd "$(dirname "$0")/../.."

python - <<'PY'
import sys
try:
    import cupy
    n = cupy.cuda.runtime.getDeviceCount()
except Exception as e:
    sys.exit(f"tests/gpu/run.sh: CuPy with a working CUDA device is needed ({type(e).__name__}: {e})")
p = cupy.cuda.runtime.getDeviceProperties(0)
print(f"GPU: {p['name'].decode()} (sm_{p['major']}{p['minor']}), {n} device(s); CuPy {cupy.__version__}, "
      f"CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}")
PY

# a fresh kernel cache, so that the run measures compiles too and leaves nothing behind
GRAPHC_CUDA_CACHE_DIR="$(mktemp -d)"
export GRAPHC_CUDA_CACHE_DIR
trap 'rm -rf "$GRAPHC_CUDA_CACHE_DIR"' EXIT

GRAPHC_GPU_TESTS=1 python -m pytest -q -p no:cacheprovider tests/gpu/test_gpu.py tests/gpu/test_distributed_nccl.py tests/test_cuda*.py

if [[ "${1:-}" != "--no-bench" ]]; then
    if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        python tests/gpu/bench.py
    else
        echo "benchmark skipped: torch with CUDA is not installed"
    fi
fi
