# Shared body of the ftdist sbatch scripts in this folder; each script sets its #SBATCH resources and
# DEFAULT_CONFIG / LAUNCHER, then sources this file. Not a job script by itself.
#
#   sbatch slurm/<script>.sh [CONFIG] [key=value ...]
#
# What it does, in order:
#   1. takes CONFIG (default: the script's DEFAULT_CONFIG) and key=value overrides from the command line;
#   2. finds the head node and port with `python -m ftdist.distributed.rendezvous` (scontrol show hostnames, job id);
#   3. starts the training step in the background:
#        LAUNCHER=torchrun: srun, one task per node -> torchrun --nnodes N --node_rank $SLURM_NODEID
#                           --nproc_per_node (GPUs on the node) --rdzv_endpoint head:port -> ftdist train
#        LAUNCHER=srun:     srun, one task per process -> ftdist train (ftdist.distributed.env maps SLURM_PROCID etc.)
#   4. traps SIGUSR1 (`#SBATCH --signal=B:USR1@N`, time limit near) and SIGTERM (preemption) and forwards
#      SIGUSR1 to the training step (`scancel --signal=USR1 $SLURM_JOB_ID` reaches every step task). The
#      trainer all-reduces the flag, saves a checkpoint at the next step boundary and exits 75;
#   5. requeues the job (`scontrol requeue`) when the step exited 75, or failed after a forwarded SIGUSR1
#      (torchrun turns a worker's 75 into 1). The requeued job resumes from `latest` (checkpoint.resume: auto).
#      Not after SIGTERM: that is `scancel` (stay cancelled) or a preemption / `scontrol requeue`, after which
#      Slurm requeues the job itself.
#
# Environment knobs (sbatch passes your environment through):
#   FTDIST_PYTHON=python          the interpreter that has ftdist installed (an activated venv works as is)
#   FTDIST_NPROC_PER_NODE=N       processes per node for torchrun (default: GPUs on the node, else 1)
#   FTDIST_MAX_RESTARTS=50        stop requeueing after this many restarts
#   FTDIST_SAVE_TIMEOUT=240       seconds torchrun waits for workers to exit after SIGTERM before SIGKILL
set -uo pipefail

PYTHON=${FTDIST_PYTHON:-python}
LAUNCHER=${FTDIST_LAUNCHER:-${LAUNCHER:-torchrun}}
CONFIG=$DEFAULT_CONFIG
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then
  CONFIG=$1
  shift
fi
if [ ! -f "$CONFIG" ]; then
  echo "ftdist slurm: error: config file '$CONFIG' not found (relative to $PWD). Submit from the ftdist" \
    "checkout, or pass a path: sbatch $0 path/to/config.yaml [key=value ...]" >&2
  exit 2
fi

# The head node and port come from ftdist.distributed.rendezvous, the same code every srun task uses.
read -r HEAD PORT < <("$PYTHON" -m ftdist.distributed.rendezvous) || exit 2
NNODES=${SLURM_JOB_NUM_NODES:-1}
if [ -n "${FTDIST_NPROC_PER_NODE:-}" ]; then
  NPROC=$FTDIST_NPROC_PER_NODE
elif [ -n "${SLURM_GPUS_ON_NODE:-}" ] && [ "${SLURM_GPUS_ON_NODE}" -gt 0 ]; then
  NPROC=$SLURM_GPUS_ON_NODE
else
  NPROC=1
fi
export PYTHONUNBUFFERED=1
# Threads: each worker takes OMP_NUM_THREADS if you set it, else 1 for a small model, else its share of the
# allocation (SLURM_CPUS_PER_TASK over the processes per task): ftdist.distributed.device.pick_cpu_threads, the rule of every
# launcher. torchrun sets OMP_NUM_THREADS=1 in its workers, so your own value travels as FTDIST_OMP_NUM_THREADS.
export FTDIST_OMP_NUM_THREADS=${FTDIST_OMP_NUM_THREADS-${OMP_NUM_THREADS:-}}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

echo "ftdist slurm: job ${SLURM_JOB_ID} SLURM_RESTART_COUNT=${SLURM_RESTART_COUNT:-0} nodes=${SLURM_JOB_NODELIST}" \
  "head=${HEAD}:${PORT} launcher=${LAUNCHER} config=${CONFIG} overrides=[$*] started $(date -u +%FT%TZ)"

PREEMPTED=0
TERMINATED=0
on_signal() {
  PREEMPTED=1
  [ "$1" = TERM ] && TERMINATED=1
  echo "ftdist slurm: batch script got SIG$1; asking the training step to save and stop (SIGUSR1)"
  scancel --signal=USR1 "$SLURM_JOB_ID" || true # no --batch: every step task, not this shell
}
trap 'on_signal USR1' USR1
trap 'on_signal TERM' TERM

if [ "$LAUNCHER" = torchrun ]; then
  # The node rank must be read inside each task ($SLURM_NODEID differs per node), hence `bash -c`.
  # SIGUSR1 reaches the workers straight from Slurm (a step signal goes to every process of the step).
  # torchrun's agent must not act on it: with --signals-to-handle=...,SIGUSR1 it forwards the first one but a
  # second (scancel --full hits it twice) makes it SIGTERM the workers and exit mid-save (seen with torch 2.13).
  # So the agent ignores USR1 (`trap '' USR1` is inherited); the trainer installs its own handler.
  export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=${FTDIST_SAVE_TIMEOUT:-240}
  srun --nodes="$NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 \
    bash -c 'trap "" USR1; exec "$0" -m torch.distributed.run --node_rank="$SLURM_NODEID" "$@"' "$PYTHON" \
    --nnodes="$NNODES" --nproc_per_node="$NPROC" --rdzv_backend=static --rdzv_endpoint="$HEAD:$PORT" \
    -m ftdist train "$CONFIG" "$@" &
elif [ "$LAUNCHER" = srun ]; then
  # ftdist.distributed.env derives the same head:port from SLURM_JOB_NODELIST and SLURM_JOB_ID in every task.
  srun "$PYTHON" -m ftdist train "$CONFIG" "$@" &
else
  echo "ftdist slurm: error: FTDIST_LAUNCHER=$LAUNCHER; use torchrun or srun" >&2
  exit 2
fi
STEP_PID=$!

# `wait` returns early (status > 128) when a trapped signal arrives; keep waiting until srun has exited.
while :; do
  wait "$STEP_PID"
  rc=$?
  kill -0 "$STEP_PID" 2>/dev/null || break
done

if [ "$TERMINATED" = 1 ]; then
  echo "ftdist slurm: stopped by SIGTERM (scancel, preemption or scontrol requeue), step exit $rc at" \
    "$(date -u +%FT%TZ); not requeueing: Slurm requeues a preempted job itself, a cancelled one stays cancelled" \
    "(resubmit with the same output_dir to resume)"
  exit "$rc"
fi
if [ "$rc" = 75 ] || { [ "$PREEMPTED" = 1 ] && [ "$rc" != 0 ]; }; then
  if [ "${SLURM_RESTART_COUNT:-0}" -ge "${FTDIST_MAX_RESTARTS:-50}" ]; then
    echo "ftdist slurm: stopped for preemption, but already restarted ${SLURM_RESTART_COUNT} times; not requeueing" >&2
    exit 75
  fi
  echo "ftdist slurm: training saved a checkpoint and stopped (exit $rc); requeueing job $SLURM_JOB_ID at $(date -u +%FT%TZ)"
  scontrol requeue "$SLURM_JOB_ID" || echo "ftdist slurm: scontrol requeue failed; resubmit with the same output_dir to resume" >&2
  exit 0
fi
echo "ftdist slurm: training exited with status $rc at $(date -u +%FT%TZ)"
exit "$rc"
