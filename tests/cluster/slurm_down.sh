#!/usr/bin/env bash
# slurm_down.sh - stop the Slurm cluster started by tests/cluster/slurm_up.sh.
# Only processes recorded in /run/slurm-ci/<name>.pid (pid + start time +
# command name, all three must match) are signalled; nothing is killed by name.
#
#   slurm_down.sh              cancel jobs, stop slurmd, slurmctld, slurmdbd, mariadbd, munged
#   slurm_down.sh --keep-munge stop only the Slurm daemons (used by slurm_up.sh on config change)
#   slurm_down.sh --purge      additionally delete Slurm state, spool, logs, the
#                              accounting database and the fake GPU device nodes
set -uo pipefail

RUN_DIR=/run/slurm-ci
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
KEEP_MUNGE=0; PURGE=0
for a in "$@"; do
  case "$a" in
    --keep-munge) KEEP_MUNGE=1 ;;
    --purge) PURGE=1 ;;
    *) echo "usage: $0 [--keep-munge] [--purge]" >&2; exit 2 ;;
  esac
done

log() { echo "[slurm_down $(date +%T)] $*" >&2; }

source "$(dirname "${BASH_SOURCE[0]}")/_daemons.sh"

stop() { # stop NAME [grace seconds]
  local name=$1 grace=${2:-15} f=$RUN_DIR/$1.pid pid st comm i
  if ! is_ours "$name"; then
    [ -e "$f" ] && log "$name: recorded process is gone; removing stale record"
    rm -f "$f"; return 0
  fi
  read -r pid st comm < "$f"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq $((grace * 5))); do
    is_ours "$name" || break
    sleep 0.2
  done
  if is_ours "$name"; then
    log "$name did not exit after ${grace}s: SIGKILL pid $pid"
    kill -KILL "$pid" 2>/dev/null; sleep 0.5
  fi
  rm -f "$f"
}

# 1. cancel all jobs and let their slurmstepd processes finish, so that no job
#    processes outlive slurmd (slurmstepd is detached from slurmd).
if is_ours slurmctld && scontrol ping >/dev/null 2>&1; then
  jobs=$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for i in $(seq 150); do   # up to 30 s (KillWait=10 in slurm.conf)
      # default squeue lists PENDING/RUNNING/SUSPENDED/COMPLETING/CONFIGURING only
      [ -z "$(squeue -h -o '%A' 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi
# any step processes still known to slurmd? (they belong to jobs of our cluster)
if any_slurmd_ours; then
  left=$(scontrol listpids 2>/dev/null | awk 'NR>1 && $1 ~ /^[0-9]+$/ {print $1}')
  [ -n "$left" ] && log "WARNING: job processes still present: $(echo $left)"
fi

for name in $(slurmd_records); do stop "$name" 20; done
# the nodes' /etc/hosts lines (slurm_up.sh adds them for a two-node cluster)
grep -q ' # slurm-ci$' /etc/hosts && sed -i '/ # slurm-ci$/d' /etc/hosts
stop slurmctld 20
stop slurmdbd 20
stop mariadbd 60
[ "$KEEP_MUNGE" = 1 ] || stop munged 10

# leftover job step daemons (slurmstepd) show up as unix sockets in the spool dir
socks=$(find "$SPOOL_DIR" -maxdepth 2 -type s 2>/dev/null | tr '\n' ' ')
[ -n "$socks" ] && log "NOTE: step sockets left in $SPOOL_DIR: $socks"

if [ "$PURGE" = 1 ]; then
  log "purging state, spool and logs"
  rm -rf "${STATE_DIR:?}"/* "${SPOOL_DIR:?}"/* "$LOG_DIR"/slurm*.log "$LOG_DIR"/*.stderr \
         "$LOG_DIR"/mariadb*.log /var/lib/slurm-ci-mysql /var/lib/slurm-ci
fi
log "done"
exit 0
