#!/usr/bin/env bash
# Set up (if needed), check the code (ruff lint and format, mypy on spp_cls/), then run the whole test suite on
# CPU. Extra arguments go to pytest, e.g. -m "not slow"; SKIP_LINT=1 runs the tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${SKIP_LINT:-0}" != 1 ]; then
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  .venv/bin/mypy
fi
exec .venv/bin/python -m pytest "$@"
