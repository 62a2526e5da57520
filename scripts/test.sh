#!/usr/bin/env bash
# Set up whatever is missing (scripts/setup.sh), then lint and run the whole test suite on CPU.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/media -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest -q -ra "$@"
