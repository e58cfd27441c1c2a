#!/usr/bin/env bash
# The pruning core at Llama-3.1-8B shape on one GPU: Wanda and SparseGPT, sequential and
# one-shot, 128 x 2048 tokens. Needs python with torch and transformers only (no install of
# raysweep). Prints one line per run and writes $OUT/gpu_check.json (or --json PATH); exit 0
# when every run meets its target. Extra arguments go to benchmarks/gpu_check.py (--tiny,
# --layers N, --runs, ...). The timeout stops it before 9 minutes whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout --signal=TERM 530 "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
