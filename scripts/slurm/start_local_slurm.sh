#!/usr/bin/env bash
# Start (or find already running) a one-node Slurm on localhost for tests and CI: munged, slurmctld and slurmd,
# all as root, with every file (key, config, state, logs, pids) under one directory and no systemd or cgroups.
# Usage: start_local_slurm.sh [DIR]  (default: $SPP_SLURM_DIR or /tmp/spp-slurm). Idempotent. Needs root and
# Debian's slurm-wlm and munge. Env: SPP_SLURM_CTLD_PORT / SPP_SLURM_D_PORT (default 16817 / 16818, away from a
# real Slurm's 6817 / 6818), SPP_SLURM_WAIT_S (default 60). Prints the SLURM_CONF to export and how to stop.
set -euo pipefail
dir=$(realpath -m "${1:-${SPP_SLURM_DIR:-/tmp/spp-slurm}}")
ctld_port=${SPP_SLURM_CTLD_PORT:-16817}
d_port=${SPP_SLURM_D_PORT:-16818}
wait_s=${SPP_SLURM_WAIT_S:-60}

die() { echo "start_local_slurm: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "must run as root (slurmd starts jobs as their user)"
missing=()
for bin in munged mungekey slurmctld slurmd sinfo sbatch scontrol sacct; do
  command -v "$bin" > /dev/null || missing+=("$bin")
done
[ ${#missing[@]} = 0 ] || die "missing ${missing[*]} (apt-get install slurm-wlm munge)"

node=$(hostname -s)
mkdir -p "$dir"/{munge,state,spool,log,run,bin}
chmod 0711 "$dir" "$dir/munge"
conf=$dir/slurm.conf
export SLURM_CONF=$conf

# A daemon is ours when its pid file names a live process of that name (not a recycled pid).
alive() { local pid; pid=$(cat "$dir/run/$1.pid" 2> /dev/null) && [ "$(cat "/proc/$pid/comm" 2> /dev/null)" = "$1" ]; }

# munge: a private key and socket, so a system munged (if any) is neither used nor disturbed.
key=$dir/munge/munge.key
[ -f "$key" ] || mungekey --create --keyfile="$key"
chmod 0400 "$key"
socket=$dir/munge/munge.socket
if ! alive munged; then
  munged --force --socket="$socket" --key-file="$key" --pid-file="$dir/run/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"
fi

# The node as slurmd sees the hardware (CPUs, sockets, memory), so it registers without being drained.
hardware=$(slurmd -C | head -n 1)
cat > "$conf.new" <<CONF
# Written by scripts/slurm/start_local_slurm.sh: a one-node test cluster on localhost.
ClusterName=spp-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# No systemd or cgroups in a container: track job processes through /proc, no task binding, no accounting.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
# Short waits so tests with a 1-minute time limit end soon after it; finished jobs stay visible to scontrol.
KillWait=5
OverTimeLimit=0
MinJobAge=3600
$hardware NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
if cmp -s "$conf.new" "$conf"; then rm "$conf.new"; else mv "$conf.new" "$conf"; changed=1; fi

# No slurmdbd: the sacct submitit needs, answered from scontrol (see scripts/slurm/sacct), for DIR/bin on PATH.
cp "$(dirname "$(realpath "$0")")/sacct" "$dir/bin/sacct"

if ! alive slurmctld; then
  slurmctld
elif [ "${changed:-0}" = 1 ]; then
  scontrol reconfigure
fi
alive slurmd || slurmd -N "$node"

state=""
for _ in $(seq "$wait_s"); do
  state=$(sinfo -h -n "$node" -o %t 2> /dev/null || true)
  case "$state" in idle | mix | alloc) break ;; esac
  sleep 1
done
case "$state" in
  idle | mix | alloc) ;;
  *) die "node $node not up after ${wait_s}s (state '${state}'); logs in $dir/log" ;;
esac
echo "local Slurm up: node $node ($state), partition debug"
echo "  export SLURM_CONF=$conf PATH=$dir/bin:\$PATH   # PATH: the sacct that submitit needs"
echo "  stop: bash $(dirname "$(realpath "$0")")/stop_local_slurm.sh $dir"
