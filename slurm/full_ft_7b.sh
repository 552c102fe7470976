#!/bin/bash
# Full fine-tuning of Llama-2-7B with ZeRO-3: 1 node x 8 GPUs; add nodes with `sbatch --nodes=N`.
#   sbatch slurm/full_ft_7b.sh [CONFIG] [key=value ...]
# One srun task per node starts torchrun with --node_rank=$SLURM_NODEID and one worker per GPU.
# Submit from the ftdist checkout: paths (config, logs, runs/) are relative to it. Logs: slurm/logs/.
#SBATCH --job-name=ftdist-7b-full
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --mem=0
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@420
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%j.out

DEFAULT_CONFIG=cluster_configs/llama2_7b_full_zero3.yaml
LAUNCHER=torchrun
FTDIST_HOME=${FTDIST_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
source "$FTDIST_HOME/slurm/_launch.sh" || { echo "ftdist slurm: $FTDIST_HOME/slurm/_launch.sh missing; submit from the ftdist checkout or set FTDIST_HOME" >&2; exit 2; }
