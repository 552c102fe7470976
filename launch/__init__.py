"""Launchers: each one starts processes that all end in `ftdist.train(config, overrides)`.

`local` wraps torchrun on this machine, `slurm` submits through submitit, `ray_train` runs a RunConfig as a
Ray Train job (driver side) and `ray_worker` is what runs inside each Ray worker. Each launcher module has
`add_parser(subparsers)` and `run(args)` and is listed in `ftdist/commands/launch.py`.
"""
