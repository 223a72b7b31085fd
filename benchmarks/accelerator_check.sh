#!/usr/bin/env bash
# One-command check of an accelerator machine (TPU VM or NVIDIA GPU), or of a CPU with tiny shapes.
#
#   pip install -e '.[tpu]'   # or '.[cuda12]' / '.[cuda13]'; add '.[test]' to also load the export
#   bash benchmarks/accelerator_check.sh [--cpu] [--timed_steps=N] [--tiny_steps=N] [--workdir=DIR]
#
# Prints one markdown table (devices; Small/Base bf16 train-step tokens/s, TFLOP/s, MFU, peak memory
# and compile time, with the compile check's estimate beside each on a TPU; a tiny pre-training
# run and its Hugging Face export) and exits non-zero if a row failed. See
# benchmarks/accelerator_check.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="${PYTHON:-$(command -v python || command -v python3)}"
exec "$python" benchmarks/accelerator_check.py "$@"
