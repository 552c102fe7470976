"""Launchers: each one starts processes that all end in `ftdist.train(config, overrides)`.

`ray_train` runs a RunConfig as a Ray Train job (driver side), `ray_worker` is what runs inside each worker.
"""
