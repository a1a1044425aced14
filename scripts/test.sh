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
# Tests run in parallel worker processes (pytest-xdist), one per core up to 4 (SPP_TEST_WORKERS overrides; 0 runs
# them in this process); the tests on the local Slurm share one worker (tests/conftest.py). A -n given here wins.
workers=${SPP_TEST_WORKERS:-$(nproc)}
if [ "$workers" -gt 4 ]; then workers=4; fi
exec .venv/bin/python -m pytest -n "$workers" --dist loadgroup "$@"
