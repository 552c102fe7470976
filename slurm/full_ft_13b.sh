#!/bin/bash
# Full fine-tuning of Llama-2-13B with ZeRO-3 + CPU offload: 2 nodes x 8 GPUs (80 GB), multi-node ready.
#   sbatch slurm/full_ft_13b.sh [CONFIG] [key=value ...]
#   sbatch --nodes=4 slurm/full_ft_13b.sh cluster_configs/llama2_13b_full_zero3_offload.yaml train.max_steps=2000
# One srun task per node starts torchrun with --node_rank=$SLURM_NODEID and 8 workers (one per GPU);
# the head node and port come from the allocation, so --nodes on the sbatch line is all you change.
# Submit from the ftdist checkout: paths (config, logs, runs/) are relative to it. Logs: slurm/logs/.
#SBATCH --job-name=ftdist-13b-full
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --mem=0
#SBATCH --time=48:00:00
#SBATCH --signal=B:USR1@600
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%j.out

DEFAULT_CONFIG=cluster_configs/llama2_13b_full_zero3_offload.yaml
LAUNCHER=torchrun
FTDIST_HOME=${FTDIST_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
source "$FTDIST_HOME/slurm/_launch.sh" || { echo "ftdist slurm: $FTDIST_HOME/slurm/_launch.sh missing; submit from the ftdist checkout or set FTDIST_HOME" >&2; exit 2; }
