#!/usr/bin/env bash
# The pruning core at Llama-3.1-8B shape on one GPU: the evaluation rates (log-likelihood
# forwards, greedy decode steps), then Wanda and SparseGPT, sequential and one-shot, 128 x 2048
# tokens. Needs a python with torch and transformers only (no install of raysweep): $PYTHON when
# set, else the first of python3 and this checkout's .venv/bin/python that imports both. Prints
# one line per run and writes $OUT/gpu_check.json (or --json PATH); exit 0 when every run meets
# its target. Extra arguments go to benchmarks/gpu_check.py (--tiny, --layers N, --runs,
# --no-eval, ...). The timeout stops it before 9 minutes whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for candidate in python3 .venv/bin/python; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c "import torch, transformers" >/dev/null 2>&1; then
      py="$candidate"
      break
    fi
  done
fi
if [ -z "$py" ]; then
  echo "gpu_check: no python with torch and transformers (tried python3 and" \
       ".venv/bin/python); set PYTHON=/path/to/python" >&2
  exit 2
fi
exec timeout --signal=TERM 530 "$py" benchmarks/gpu_check.py "$@"
