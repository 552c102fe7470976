#!/usr/bin/env bash
# slurm_up.sh - install, configure and start a Slurm cluster for ftdist's `slurm` tests: by default two
# nodes (n1, n2) on this one machine, each its own slurmd (munged + slurmctld + 2 x slurmd, plus slurmdbd +
# MariaDB for sacct by default)
# inside a Debian 12 container/VM without systemd. Idempotent: running it again while the
# cluster is up only re-checks it. Stop it with tests/cluster/slurm_down.sh.
#
#   bash tests/cluster/slurm_up.sh && trap 'bash tests/cluster/slurm_down.sh' EXIT
#
# Accounting is on by default: submitit polls `sacct` for job state, and without it a job that
# dies without writing its result pickle (scancel, OOM, time limit) makes `job.result()` wait
# forever. It costs ~11 s of install and ~2-3 s of start-up; SLURM_CI_ACCOUNTING=0 skips it.
#
# Env knobs:
#   SLURM_UP_TIMEOUT=60       seconds to wait for the nodes to become idle
#   SLURM_CI_NODES=2          1 = one node named after this host (the old single-node cluster)
#   SLURM_CI_ACCOUNTING=1     0 = no MariaDB + slurmdbd (then `sacct` fails)
#   SLURM_CI_CPUS=            advertise this many CPUs instead of the real
#                             count (oversubscription for more concurrent jobs)
#   SLURM_CI_RESET=0          1 = wipe slurmctld/slurmd state before starting
#   SLURM_CI_FAKE_GPUS=0      N>0 = advertise N fake GPUs (gres/gpu backed by
#                             /dev/null-like char devices) so that --gres=gpu:N /
#                             --gpus-per-node=N jobs are accepted; sets CUDA_VISIBLE_DEVICES
#
# Two nodes on one host: Debian's Slurm is built with --enable-multiple-slurmd (`scontrol show config` says
# MULTIPLE_SLURMD = Yes), so each node is `slurmd -N nK` with its own port, spool, log and pid file. Each node
# has its own loopback address (n1 127.0.2.1, n2 127.0.2.2, added to /etc/hosts and removed by slurm_down.sh)
# so a job's head node name resolves as on a real cluster. n2's slurmd runs in a private mount namespace with
# an empty tmpfs on $LOCAL_DIR: a folder there is one node's local disk, not shared (the test of an
# output_dir that one node cannot see).
#
# Every daemon is started in the foreground (-D/-F) under setsid and its pid
# (plus /proc start time) is recorded in $RUN_DIR/<name>.pid, so that
# slurm_down.sh stops exactly the processes this script started.
set -euo pipefail

SLURM_UP_TIMEOUT=${SLURM_UP_TIMEOUT:-60}
SLURM_CI_ACCOUNTING=${SLURM_CI_ACCOUNTING:-1}
SLURM_CI_CPUS=${SLURM_CI_CPUS:-}
SLURM_CI_RESET=${SLURM_CI_RESET:-0}
SLURM_CI_FAKE_GPUS=${SLURM_CI_FAKE_GPUS:-0}
SLURM_CI_NODES=${SLURM_CI_NODES:-2}

RUN_DIR=/run/slurm-ci                  # our pid records
CONF_DIR=/etc/slurm
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
DB_DIR=/var/lib/slurm-ci-mysql         # private MariaDB datadir (accounting only)
DB_RUN=/run/mysqld                     # default client socket dir => no client config needed
DB_SOCK=$DB_RUN/mysqld.sock
LOCAL_DIR=/srv/slurm-ci-local          # node-local on n2 (a private tmpfs there), the host's folder elsewhere

log() { echo "[slurm_up $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

# ---------------------------------------------------------------- helpers
source "$(dirname "${BASH_SOURCE[0]}")/_daemons.sh"

# record NAME PID COMM
record() {
  local st
  st=$(starttime "$2") || true
  [ -n "$st" ] || die "$1 (pid $2) died right after start; see $LOG_DIR"
  echo "$2 $st $3" > "$RUN_DIR/$1.pid"
}

# spawn NAME COMM LOGFILE CMD... : start CMD detached (own session), record pid
spawn() {
  local name=$1 comm=$2 logf=$3; shift 3
  setsid "$@" </dev/null >>"$logf" 2>&1 &
  local pid=$!
  # setsid forks only if we are a process-group leader; in a script we are
  # not, so $! is the daemon itself once exec() has happened.
  local i
  for i in $(seq 50); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] && break
    sleep 0.1
  done
  record "$name" "$pid" "$comm"
  log "started $name pid $pid"
}

wait_for() { # wait_for SECONDS DESCRIPTION CMD...   (DESCRIPTION is for readers only)
  local t=$1; shift 2
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.2
  done
}

# ---------------------------------------------------------------- install
need_pkgs=()
for b in slurmctld slurmd sbatch munged; do command -v "$b" >/dev/null || need_pkgs=(slurmctld slurmd slurm-client munge); done
if [ "$SLURM_CI_ACCOUNTING" = 1 ]; then
  command -v slurmdbd >/dev/null || need_pkgs+=(slurmdbd)
  command -v mariadbd >/dev/null || need_pkgs+=(mariadb-server)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The package scripts must not start munge/slurm/mariadb through their
  # init.d scripts (we start them ourselves below). Docker-style images ship
  # /usr/sbin/policy-rc.d (exit 101) for that; add one temporarily if absent.
  tmp_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
    tmp_policy=1; trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  if [ $tmp_policy = 1 ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi
command -v setsid >/dev/null || die "setsid (util-linux) missing"

mkdir -p "$RUN_DIR" "$CONF_DIR" "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR"
chmod 755 "$RUN_DIR"

# ---------------------------------------------------------------- config
HOST=$(hostname -s)                    # slurmctld's host (and the single node's name)
if [ "$SLURM_CI_NODES" = 1 ]; then
  NODES=("$HOST"); ADDRS=(127.0.0.1); PORTS=(6818)
elif [ "$SLURM_CI_NODES" = 2 ]; then
  NODES=(n1 n2); ADDRS=(127.0.2.1 127.0.2.2); PORTS=(6821 6822)
else
  die "SLURM_CI_NODES=$SLURM_CI_NODES: use 1 or 2"
fi
# slurmd -C prints: NodeName=x CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
HW=$(slurmd -C | head -n1)
hw() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$HW"; }
CPUS=$(hw CPUs); SOCKETS=$(hw SocketsPerBoard); CORES=$(hw CoresPerSocket)
THREADS=$(hw ThreadsPerCore); MEM=$(hw RealMemory)
REALMEM=$((MEM * 95 / 100))           # a bit under, or the node drains "Low RealMemory"
OVERRIDE=""
if [ -n "$SLURM_CI_CPUS" ] && [ "$SLURM_CI_CPUS" != "$CPUS" ]; then
  NODE_HW="CPUs=$SLURM_CI_CPUS"
  OVERRIDE="SlurmdParameters=config_overrides"
else
  NODE_HW="CPUs=$CPUS Sockets=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS"
fi

GRES_LINE=""; NODE_GRES=""
if [ "$SLURM_CI_FAKE_GPUS" -gt 0 ]; then
  # gres/gpu drops file-less GPUs and wants character devices: make some
  # (major 1 minor 3 = same device as /dev/null)
  install -d -m 0755 /var/lib/slurm-ci
  for i in $(seq 0 $((SLURM_CI_FAKE_GPUS - 1))); do
    [ -c /var/lib/slurm-ci/fakegpu$i ] || mknod /var/lib/slurm-ci/fakegpu$i c 1 3
  done
  GRES_LINE="GresTypes=gpu"
  NODE_GRES="Gres=gpu:$SLURM_CI_FAKE_GPUS"
  NEW_GRES="NodeName=$(IFS=,; echo "${NODES[*]}") Name=gpu File=/var/lib/slurm-ci/fakegpu[0-$((SLURM_CI_FAKE_GPUS - 1))]"
  if [ "$(cat "$CONF_DIR/gres.conf" 2>/dev/null)" != "$NEW_GRES" ]; then
    printf '%s\n' "$NEW_GRES" > "$CONF_DIR/gres.conf"
  fi
elif grep -qs /var/lib/slurm-ci/fakegpu "$CONF_DIR/gres.conf"; then
  rm -f "$CONF_DIR/gres.conf"          # ours from an earlier run with fake GPUs
fi

if [ "$SLURM_CI_ACCOUNTING" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$HOST
AccountingStoragePort=6819"
else
  ACCT="AccountingStorageType=accounting_storage/none"
fi

# Every node advertises the whole machine (the nodes share its cores; nothing is enforced).
NODE_LINES=$(for i in "${!NODES[@]}"; do
  echo "NodeName=${NODES[$i]} NodeHostname=$HOST NodeAddr=${ADDRS[$i]} Port=${PORTS[$i]} $NODE_HW RealMemory=$REALMEM $NODE_GRES State=UNKNOWN"
done)

NEW_CONF=$(cat <<EOF
# Generated by ftdist tests/cluster/slurm_up.sh - CI cluster of $SLURM_CI_NODES node(s) on one host
ClusterName=ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# requeued jobs wait cred_expire+1 s before they may start again (default 120)
AuthInfo=cred_expire=10
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$ACCT
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
ReturnToService=2
KillWait=10
MinJobAge=300
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR/%n
SlurmctldPidFile=$RUN_DIR/slurmctld.self.pid
SlurmdPidFile=$RUN_DIR/slurmd.%n.self.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.%n.log
SlurmctldPort=6817
SlurmdPort=6818
MailProg=/bin/true
$OVERRIDE
$GRES_LINE
$NODE_LINES
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)

CONF_CHANGED=0
if [ ! -f "$CONF_DIR/slurm.conf" ] || [ "$(cat "$CONF_DIR/slurm.conf")" != "$NEW_CONF" ]; then
  printf '%s\n' "$NEW_CONF" > "$CONF_DIR/slurm.conf"
  CONF_CHANGED=1
fi
# cgroup.conf is not needed with proctrack/linuxproc + task/none.

if [ "$CONF_CHANGED" = 1 ] && { is_ours slurmctld || any_slurmd_ours; }; then
  log "slurm.conf changed while cluster is up: restarting slurm daemons"
  "$(dirname "$0")/slurm_down.sh" --keep-munge
fi

if [ "$SLURM_CI_RESET" = 1 ] && ! is_ours slurmctld; then
  log "SLURM_CI_RESET=1: wiping $STATE_DIR and $SPOOL_DIR"
  rm -rf "${STATE_DIR:?}"/* "${SPOOL_DIR:?}"/*
fi

# ---------------------------------------------------------------- munge
if [ ! -s /etc/munge/munge.key ]; then
  log "creating munge key"
  install -d -o munge -g munge -m 0700 /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
fi
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
for d in /var/log/munge /var/lib/munge; do [ -d "$d" ] || install -d -o munge -g munge -m 0700 "$d"; done

if is_ours munged; then
  log "munged already running (ours)"
elif munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "a munged not started by this script is already serving /run/munge; using it"
else
  rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock /run/munge/munged.pid
  spawn munged munged "$LOG_DIR/munged.stderr" \
    setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F
  wait_for 10 munge sh -c 'munge -n | unmunge' || die "munged did not come up"
fi

# ---------------------------------------------------------------- MariaDB + slurmdbd (optional)
if [ "$SLURM_CI_ACCOUNTING" = 1 ]; then
  if ! is_ours mariadbd; then
    if [ ! -d "$DB_DIR/mysql" ]; then
      log "initialising MariaDB datadir $DB_DIR"
      install -d -o mysql -g mysql -m 0750 "$DB_DIR"
      mariadb-install-db --user=mysql --datadir="$DB_DIR" --auth-root-authentication-method=socket \
        --skip-test-db >"$LOG_DIR/mariadb-install.log" 2>&1 || die "mariadb-install-db failed"
    fi
    install -d -o mysql -g mysql -m 0755 "$DB_RUN"
    spawn mariadbd mariadbd "$LOG_DIR/mariadbd.log" \
      /usr/sbin/mariadbd --user=mysql --datadir="$DB_DIR" --socket="$DB_SOCK" \
      --pid-file="$DB_RUN/mariadbd.self.pid" --skip-networking --skip-log-bin \
      --innodb-buffer-pool-size=64M --log-error="$DB_DIR/mariadbd.err"
    wait_for 30 mariadb mariadb --socket="$DB_SOCK" -e 'select 1' || die "mariadbd did not come up"
    mariadb --socket="$DB_SOCK" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
      CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmci';
      GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  fi
  cat > "$CONF_DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$RUN_DIR/slurmdbd.self.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmci
StoragePort=3306
EOF
  chmod 600 "$CONF_DIR/slurmdbd.conf"
  if ! is_ours slurmdbd; then
    spawn slurmdbd slurmdbd "$LOG_DIR/slurmdbd.stderr" /usr/sbin/slurmdbd -D
    wait_for 30 slurmdbd sacctmgr -n show cluster || die "slurmdbd did not come up"
  fi
  # register the cluster before slurmctld starts (it would retry otherwise)
  sacctmgr -n -P show cluster format=cluster | grep -qx ci || sacctmgr -i add cluster ci >/dev/null
fi

# ---------------------------------------------------------------- slurmctld / slurmd
if is_ours slurmctld; then
  log "slurmctld already running (ours)"
else
  spawn slurmctld slurmctld "$LOG_DIR/slurmctld.stderr" /usr/sbin/slurmctld -D -i
fi
wait_for 30 slurmctld scontrol ping || { tail -20 "$LOG_DIR/slurmctld.log" >&2; die "slurmctld not answering"; }

# /etc/hosts: each node's name -> its own loopback address (our lines end in "# slurm-ci").
if [ "$SLURM_CI_NODES" != 1 ]; then
  for i in "${!NODES[@]}"; do
    line="${ADDRS[$i]} ${NODES[$i]} # slurm-ci"
    grep -qxF "$line" /etc/hosts || { sed -i "/ ${NODES[$i]} # slurm-ci\$/d" /etc/hosts; echo "$line" >> /etc/hosts; }
  done
fi
install -d -m 0755 "$LOCAL_DIR"

for i in "${!NODES[@]}"; do
  node=${NODES[$i]}
  install -d -m 0755 "$SPOOL_DIR/$node"
  if is_ours "slurmd-$node"; then
    log "slurmd for $node already running (ours)"
  elif [ "$i" = 1 ]; then  # the second node: its own mount namespace, LOCAL_DIR a private tmpfs (node-local)
    spawn "slurmd-$node" slurmd "$LOG_DIR/slurmd.$node.stderr" unshare --mount --propagation private \
      sh -c "mount -t tmpfs -o size=64m slurm-ci-local '$LOCAL_DIR' && exec /usr/sbin/slurmd -D -N '$node'"
  else
    spawn "slurmd-$node" slurmd "$LOG_DIR/slurmd.$node.stderr" /usr/sbin/slurmd -D -N "$node"
  fi
done

# ---------------------------------------------------------------- wait for idle
# slurmctld recovers a node's old state (often "idle") from its state files,
# so "idle" alone does not prove that *this* slurmd registered: also require
# SlurmdStartTime >= start time of our slurmd process.
registered() { # registered NODE
  local t pid t0
  read -r pid _ < "$RUN_DIR/slurmd-$1.pid"
  t0=$(date -d "$(ps -o lstart= -p "$pid")" +%s)
  t=$(scontrol -o show node "$1" 2>/dev/null | sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p')
  [ -n "$t" ] && [ "$t" != None ] && [ "$(date -d "$t" +%s)" -ge $((t0 - 1)) ]
}
end=$((SECONDS + SLURM_UP_TIMEOUT))
for NODE in "${NODES[@]}"; do
  resumed=0
  while :; do
    st=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1 || true)
    registered "$NODE" || st="unregistered:$st"
    case "$st" in
      idle|mixed|allocated|completing) break ;;
      drained|draining|down|down\*|drained\*|fail*)
        if [ $resumed = 0 ] && is_ours "slurmd-$NODE"; then
          reason=$(sinfo -h -N -n "$NODE" -o '%E' 2>/dev/null || true)
          log "node $NODE is $st ($reason): trying state=resume"
          scontrol update nodename="$NODE" state=resume 2>/dev/null || true
          resumed=1
        fi ;;
    esac
    if [ $SECONDS -ge $end ]; then
      sinfo -N -l >&2 || true
      tail -20 "$LOG_DIR/slurmd.$NODE.log" >&2 || true
      die "node $NODE not idle after ${SLURM_UP_TIMEOUT}s (state '$st')"
    fi
    is_ours "slurmd-$NODE" || { tail -20 "$LOG_DIR/slurmd.$NODE.log" >&2; die "slurmd for $NODE exited"; }
    sleep 0.2
  done
  log "node $NODE is $st"
done
log "cluster up: ${#NODES[@]} node(s)"
sinfo
