#!/bin/bash
# The tiny SQL GPT (or any small config) on one CPU or one GPU of any kind.
#   sbatch slurm/tiny_gpt.sh [CONFIG] [key=value ...]
#   sbatch slurm/tiny_gpt.sh cluster_configs/tiny_sql_gpt.yaml train.max_steps=500
# Submit from the ftdist checkout: paths (config, logs, runs/) are relative to it. Logs: slurm/logs/.
#SBATCH --job-name=ftdist-tiny-gpt
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@60
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%j.out

DEFAULT_CONFIG=cluster_configs/tiny_sql_gpt.yaml
LAUNCHER=srun # one process: no torchrun needed; ftdist.distributed.env reads SLURM_PROCID/SLURM_NTASKS
FTDIST_HOME=${FTDIST_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
source "$FTDIST_HOME/slurm/_launch.sh" || { echo "ftdist slurm: $FTDIST_HOME/slurm/_launch.sh missing; submit from the ftdist checkout or set FTDIST_HOME" >&2; exit 2; }
