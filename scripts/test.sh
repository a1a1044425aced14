#!/usr/bin/env bash
# Set up (if needed), check the code (ruff lint and format, mypy on spp_cls/), then run the whole test suite on
# CPU. Extra arguments go to pytest, e.g. -m "not slow"; SKIP_LINT=1 runs the tests only.
#
# The whole suite runs in two pytest processes side by side: the tests on the local Slurm (tests/cluster: most
# of their minutes are spent waiting for a job's time limit, its signal and its requeue) in one, the rest in the
# other; the cluster tests' output follows the rest's. Given test paths (or SPLIT=0), one pytest process runs
# them. Why not pytest-xdist: docs/development.md, "Tests".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${SKIP_LINT:-0}" != 1 ]; then
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  .venv/bin/mypy
fi

given_paths() {  # whether any argument names a test file or folder (tests/x.py, tests/x.py::test_y, tests/cli)
  local arg
  for arg in "$@"; do
    if [[ "$arg" != -* && -e "${arg%%::*}" ]]; then
      return 0
    fi
  done
  return 1
}

if [ "${SPLIT:-1}" != 1 ] || given_paths "$@" || [ ! -d tests/cluster ]; then
  exec .venv/bin/python -m pytest "$@"
fi

cluster_log=$(mktemp)
cluster_tmp=$(mktemp -d)
trap 'rm -rf "$cluster_log" "$cluster_tmp"' EXIT
# its own temporary folder and no cache writes: two pytest processes must not share either
.venv/bin/python -m pytest "$@" -p no:cacheprovider --basetemp="$cluster_tmp" tests/cluster > "$cluster_log" 2>&1 &
cluster_pid=$!
rest=0
.venv/bin/python -m pytest "$@" --ignore=tests/cluster || rest=$?
cluster=0
wait "$cluster_pid" || cluster=$?
echo
echo "=================== tests/cluster (run beside the rest: exit status $cluster) ==================="
cat "$cluster_log"
# 5: no test selected (e.g. -k that matches only one side); a failure only when neither side ran a test
if [ "$rest" = 5 ] && [ "$cluster" = 5 ]; then
  exit 5
fi
for status in "$rest" "$cluster"; do
  if [ "$status" != 0 ] && [ "$status" != 5 ]; then
    exit "$status"
  fi
done
exit 0
