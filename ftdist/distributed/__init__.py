"""Where this process runs and how ranks agree.

- `env`: rank, world size, local and node rank from the launcher (torch-free: login-node checks use it);
- `device`: device, precision and CPU threads;
- `rendezvous`: a Slurm job's head node and port (torch-free: the sbatch script runs it);
- `process_group`: joining and leaving the process group;
- `collectives`: any_rank, mean_over_ranks, on_rank0, with one device rule;
- `shared_dir`: is output_dir one folder on every node?

This package's `__init__` imports nothing, so `python -m ftdist.distributed.rendezvous` stays torch-free.
"""
