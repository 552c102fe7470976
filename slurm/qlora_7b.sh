#!/bin/bash
# QLoRA on Llama-2-7B (4-bit NF4 base + LoRA adapters) on one GPU (10-14 GB at seq_len 512).
#   sbatch slurm/qlora_7b.sh [CONFIG] [key=value ...]
# Submit from the ftdist checkout: paths (config, logs, runs/) are relative to it. Logs: slurm/logs/.
#SBATCH --job-name=ftdist-7b-qlora
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=12:00:00
#SBATCH --signal=B:USR1@180
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%j.out

DEFAULT_CONFIG=cluster_configs/qlora_llama2_7b_sql.yaml
LAUNCHER=srun # one process: no torchrun needed; ftdist.distributed.env reads SLURM_PROCID/SLURM_NTASKS
FTDIST_HOME=${FTDIST_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
source "$FTDIST_HOME/slurm/_launch.sh" || { echo "ftdist slurm: $FTDIST_HOME/slurm/_launch.sh missing; submit from the ftdist checkout or set FTDIST_HOME" >&2; exit 2; }
