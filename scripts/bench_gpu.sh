#!/usr/bin/env bash
# One command for the GPU figures of issue 12 (see scripts/bench_gpu.py for what each row means):
#   scripts/bench_gpu.sh [--files 200] [--json out.json] [--skip faiss,...]
# Without an NVIDIA GPU it says so, prints the CPU-side figures and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
else
  echo "bench_gpu: no nvidia-smi on this machine: no NVIDIA GPU; measuring the CPU side only." >&2
fi
exec "$PY" scripts/bench_gpu.py "$@"
