#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, from Debian's packages, for running the workflow's
# SLURM profile end to end (docs/scheduler.md; CI: scripts/slurm_smoke.sh).
#
#   scripts/slurm_cluster.sh start    install if needed, write slurm.conf, start munged, slurmctld, slurmd
#   scripts/slurm_cluster.sh stop     stop the three daemons this script started (by their pid files)
#   scripts/slurm_cluster.sh status   sinfo and squeue, or exit 1 when the cluster is not up
#   scripts/slurm_cluster.sh logs     the daemons' log tails (what CI prints on failure)
#
# Needs root and apt (Debian 12: slurm-wlm 22.05). No systemd: the daemons run in their
# foreground mode in the background, their pids in $ETC_SLURM_STATE. No accounting daemon:
# job states come from `squeue`, so MinJobAge keeps finished jobs visible long enough for
# snakemake-executor-plugin-slurm's status checks (it requires >= 3x its first check interval,
# and its interval grows to 180 s while nothing finishes). Node CPUs and memory are what
# `slurmd -C` reads from this machine. Idempotent: `start` on a running cluster with the same
# configuration does nothing; with a changed one it restarts the daemons.
set -euo pipefail

STATE=${ETC_SLURM_STATE:-/run/etc-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by etc scripts/slurm_cluster.sh"
MIN_JOB_AGE=${ETC_SLURM_MIN_JOB_AGE:-600}
PACKAGES=(slurmctld slurmd slurm-client munge)
LOGS=(/var/log/munge/munged.log /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log)

die() { echo "slurm_cluster: $*" >&2; exit 1; }

alive() {  # alive NAME: the daemon recorded in $STATE/NAME.pid is running
  local pid
  pid=$(cat "$STATE/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get > /dev/null || die "apt-get not found: install ${missing[*]} with your package manager"
  [ "$(id -u)" -eq 0 ] || die "installing ${missing[*]} needs root"
  local t0=$SECONDS
  echo "slurm_cluster: installing ${missing[*]}"
  apt-get update -q > "$STATE/apt.log" 2>&1 || { cat "$STATE/apt.log" >&2; die "apt-get update failed"; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    >> "$STATE/apt.log" 2>&1 || { tail -n 30 "$STATE/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
  echo "slurm_cluster: installed in $((SECONDS - t0)) s"
}

write_conf() {  # sets CONF_CHANGED=1 when slurm.conf was (re)written
  local host node new
  host=$(hostname -s)
  # "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
  node=$(slurmd -C | head -n 1)
  [[ $node == NodeName=* ]] || die "slurmd -C printed no node line: $node"
  if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script: refusing to replace a real cluster's configuration"
  fi
  new=$(cat <<EOF
$MARK; rewritten on each start
ClusterName=etc
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.daemon.pid
SlurmdPidFile=$STATE/slurmd.daemon.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
MinJobAge=$MIN_JOB_AGE
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
  if [ ! -e "$CONF" ] || [ "$new" != "$(cat "$CONF")" ]; then
    mkdir -p "$(dirname "$CONF")"
    printf '%s\n' "$new" > "$CONF.tmp" && mv "$CONF.tmp" "$CONF"
    CONF_CHANGED=1
  fi
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
  local limit=$1 what=$2
  shift 2
  local t0=$SECONDS
  until "$@" > /dev/null 2>&1; do
    if [ $((SECONDS - t0)) -ge "$limit" ]; then
      show_logs
      die "$what not ready after $limit s (logs above)"
    fi
    sleep 1
  done
}

node_idle() {
  local state
  state=$(sinfo -h -N -o %t 2>/dev/null | head -n 1)
  case $state in
    idle*|mix*|alloc*) return 0 ;;
    down*|drain*|drng*|inval*) scontrol update NodeName="$(hostname -s)" State=RESUME > /dev/null 2>&1 ;;
  esac
  return 1
}

start_daemon() {  # start_daemon NAME COMMAND...: run COMMAND (a foreground daemon) in the background
  local name=$1
  shift
  alive "$name" && return 0
  setsid "$@" >> "$STATE/$name.out" 2>&1 < /dev/null &
  echo $! > "$STATE/$name.pid"
}

start() {
  [ "$(id -u)" -eq 0 ] || die "start needs root (it installs packages and starts daemons)"
  mkdir -p "$STATE"
  install_packages
  CONF_CHANGED=0
  write_conf
  if [ "$CONF_CHANGED" = 1 ] && { alive slurmctld || alive slurmd; }; then
    echo "slurm_cluster: configuration changed: restarting the SLURM daemons"
    stop_daemon slurmd
    stop_daemon slurmctld
  fi
  mkdir -p "$STATE/slurmctld" "$STATE/slurmd" /var/log/slurm /run/munge /var/lib/munge /var/log/munge
  chown slurm:slurm "$STATE/slurmctld" /var/log/slurm
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  [ -s /etc/munge/munge.key ] || die "/etc/munge/munge.key is missing: run mungekey --create (as user munge)"
  start_daemon munged setpriv --reuid munge --regid munge --init-groups /usr/sbin/munged --foreground
  wait_for 20 munged munge -n
  start_daemon slurmctld /usr/sbin/slurmctld -D
  wait_for 30 slurmctld scontrol ping
  start_daemon slurmd /usr/sbin/slurmd -D
  wait_for 60 "the node $(hostname -s)" node_idle
  echo "slurm_cluster: up ($(sinfo -h -N -o '%N %c CPUs %m MB %t'), MinJobAge $MIN_JOB_AGE s)"
}

stop_daemon() {  # stop_daemon NAME: TERM, then KILL after 15 s, the process in NAME.pid only
  local pid i
  alive "$1" || { rm -f "$STATE/$1.pid"; return 0; }
  pid=$(cat "$STATE/$1.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 15); do
    alive "$1" || break
    sleep 1
  done
  alive "$1" && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$STATE/$1.pid"
}

stop() {
  if alive slurmctld; then  # jobs of this cluster only: it is ours
    squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
  fi
  stop_daemon slurmd
  stop_daemon slurmctld
  stop_daemon munged
  echo "slurm_cluster: stopped"
}

show_logs() {
  local f
  for f in "${LOGS[@]}" "$STATE"/*.out; do
    [ -f "$f" ] || continue
    echo "==> $f (last 40 lines)" >&2
    tail -n 40 "$f" >&2
  done
}

status() {
  alive slurmctld && alive slurmd || die "not running (start it with $0 start)"
  sinfo
  squeue
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  logs) show_logs ;;
  *) die "usage: $0 start|stop|status|logs" ;;
esac
