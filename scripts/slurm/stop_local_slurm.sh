#!/usr/bin/env bash
# Stop what start_local_slurm.sh started from DIR: cancel its jobs, then stop slurmd, slurmctld and munged by
# their pid files. Usage: stop_local_slurm.sh [DIR] [--purge]  (--purge also removes DIR: state, logs and key).
set -euo pipefail
dir=$(realpath -m "${1:-${SPP_SLURM_DIR:-/tmp/spp-slurm}}")
export SLURM_CONF=$dir/slurm.conf
# A daemon is ours when its pid file names a live process of that name (not a recycled pid).
alive() { local pid; pid=$(cat "$dir/run/$1.pid" 2> /dev/null) && [ "$(cat "/proc/$pid/comm" 2> /dev/null)" = "$1" ]; }

# Jobs first, so no slurmstepd or job process outlives its daemons.
if alive slurmctld && [ -n "$(squeue -h -o %i 2> /dev/null)" ]; then
  scancel --user="$(id -un)" 2> /dev/null || true
  for _ in $(seq 60); do [ -z "$(squeue -h -o %i 2> /dev/null)" ] && break; sleep 0.5; done
fi
# All three at once (each takes a second or two to exit), SIGKILL after 10 s.
pids=()
for daemon in slurmd slurmctld munged; do
  if alive "$daemon"; then pids+=("$(cat "$dir/run/$daemon.pid")"); fi
  rm -f "$dir/run/$daemon.pid"
done
if [ ${#pids[@]} -gt 0 ]; then
  kill "${pids[@]}"
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2> /dev/null; then kill -9 "$pid"; fi
  done
fi
echo "local Slurm in $dir stopped"
if [ "${2:-}" = --purge ]; then rm -rf "$dir"; fi
