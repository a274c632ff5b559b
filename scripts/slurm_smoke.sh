#!/usr/bin/env bash
# The smoke preset twice, once locally and once through SLURM (profiles/slurm on the one-node
# cluster of scripts/slurm_cluster.sh), then compared: the results tables' quality columns and
# every checkpoint's tensors must be equal (etc.report.compare_runs). CI runs it after the tests.
#
#   scripts/slurm_smoke.sh [WORKDIR]      (default: a new folder under /tmp)
#
# PYTHON: the interpreter with `pip install -e '.[slurm]'` (default .venv/bin/python).
# KEEP_CLUSTER=1 leaves the cluster running at the end (it is stopped otherwise, also on failure).
# Needs root and apt, like scripts/slurm_cluster.sh. Prints both wall times and the load.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
WORK=${1:-$(mktemp -d /tmp/etc-slurm-smoke.XXXXXX)}
CONFIG=$ROOT/workflow/configs/smoke.yaml
LIMIT=${ETC_SLURM_SMOKE_TIMEOUT:-1200}  # seconds per run: a stuck status query fails, never hangs
mkdir -p "$WORK"

say() { echo "slurm_smoke: $*" >&2; }

on_exit() {
  local rc=$? f
  trap - EXIT
  set +e  # every step below runs, whatever fails before it
  trap "" PIPE  # a closed reader of the logs must not keep the cluster from being stopped
  if [ "$rc" -ne 0 ]; then
    say "FAILED (exit $rc); the logs follow"
    for f in "$WORK"/local.log "$WORK"/slurm.log; do
      [ -f "$f" ] && { echo "==> $f (last 60 lines)" >&2; tail -n 60 "$f" >&2; }
    done
    # the SLURM jobs' own logs, newest last (the plugin keeps those of failed jobs)
    find "$WORK/slurm/.snakemake/slurm_logs" -name '*.log' -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -n 3 |
      while read -r _ f; do echo "==> $f (last 40 lines)" >&2; tail -n 40 "$f" >&2; done
    "$ROOT/scripts/slurm_cluster.sh" logs || true
  fi
  if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    "$ROOT/scripts/slurm_cluster.sh" stop >&2 || true
  fi
  exit "$rc"
}
trap on_exit EXIT

"$PY" -c "import snakemake_executor_plugin_slurm" 2> /dev/null ||
  { say "snakemake-executor-plugin-slurm is not importable by $PY: pip install -e '.[slurm]'"; exit 1; }

"$ROOT/scripts/slurm_cluster.sh" start
cpus=$(sinfo -h -N -o %c | head -n 1)
slurm_args=(--profile "$ROOT/profiles/slurm" --slurm-status-command squeue
            --slurm-init-seconds-before-status-checks 5)
if [ "$(sinfo -h -N -o %G | head -n 1)" = "(null)" ]; then
  # a node without GPUs rejects --gpus: the rules ask for them from train.*.gpus / infer
  slurm_args+=(--set-resources train_teacher:gpu=0 train_student:gpu=0 infer:gpu=0)
fi

run() {  # run NAME ARGS...: the smoke preset in $WORK/NAME, its output in $WORK/NAME.log
  local name=$1 t0 rc=0
  shift
  say "$name run: log in $WORK/$name.log (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  t0=$(date +%s.%N)
  # KILL 30 s after TERM: a Snakemake told to stop can wait for good on jobs that have ended
  timeout -k 30 "$LIMIT" "$PY" -m snakemake --snakefile "$ROOT/Snakefile" --directory "$WORK/$name" \
    --configfile "$CONFIG" "$@" > "$WORK/$name.log" 2>&1 || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    say "$name run did not finish within $LIMIT s (ETC_SLURM_SMOKE_TIMEOUT)"; return 1
  elif [ "$rc" -ne 0 ]; then
    say "$name run failed (exit $rc)"; return 1
  fi
  awk -v n="$name" -v a="$t0" -v b="$(date +%s.%N)" -v l="$(cut -d' ' -f1-3 /proc/loadavg)" \
    'BEGIN { printf "%s %.1f s, load after %s\n", n, b - a, l }' | tee -a "$WORK/times.txt" >&2
}

: > "$WORK/times.txt"
# sbatch as the plugin calls it, each call's arguments logged: what every job asked the node for
mkdir -p "$WORK/bin"
printf '#!/bin/sh\necho "$*" >> "%s"\nexec %s "$@"\n' "$WORK/sbatch.log" "$(command -v sbatch)" > "$WORK/bin/sbatch"
chmod +x "$WORK/bin/sbatch"
: > "$WORK/sbatch.log"

run local --cores "$cpus"
# the README's command: the profile and the preset, no --cores (each job asks for its own threads)
PATH="$WORK/bin:$PATH" run slurm "${slurm_args[@]}"

# every job but the local ones (the target `all`, resolve_config) went through sbatch
submitted=$(grep -c "submitted with SLURM jobid" "$WORK/slurm.log" || true)
expected=$(grep -c "^rule " "$WORK/slurm.log" || true)
[ "$submitted" -gt 0 ] && [ "$submitted" -eq "$expected" ] ||
  { say "SLURM ran $submitted jobs, the workflow has $expected remote jobs"; exit 1; }
say "$submitted jobs went through sbatch"

# each submission asked for no more CPUs and memory than the node has
node_mem=$(sinfo -h -N -o %m | head -n 1)
awk -v cpus="$cpus" -v mem="$node_mem" '
  { c = 0; m = 0
    for (i = 1; i <= NF; i++) {
      if ($i ~ /^--cpus-per-task=/) { split($i, a, "="); c = a[2] }
      if ($i ~ /^--mem=/) { split($i, a, "="); m = a[2] + 0 }
      if ($i == "--mem") m = $(i + 1) + 0
    }
    n++
    if (c < 1 || c > cpus || m < 1 || m > mem) { bad++; print "slurm_smoke: asks --cpus-per-task=" c " --mem=" m " of a node with " cpus " CPUs, " mem " MB: " $0 > "/dev/stderr" } }
  END { if (n == 0 || bad) exit 1; printf "slurm_smoke: %d submissions within the node (%d CPUs, %d MB)\n", n, cpus, mem > "/dev/stderr" }' \
  "$WORK/sbatch.log" || { say "a submission asked for more than the node has (or none logged)"; exit 1; }

"$PY" -m etc.report.compare_runs "$WORK/local/results/smoke" "$WORK/slurm/results/smoke"
say "local and SLURM runs agree; $(tr '\n' ';' < "$WORK/times.txt")"
