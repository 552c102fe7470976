"""ftdist: fine-tune and pre-train language models on a laptop, one GPU, torchrun, Slurm or Ray.

import ftdist
result = ftdist.train("cluster_configs/tiny_sql_gpt.yaml", ["train.max_steps=200"])
"""

from ftdist.config import RunConfig, load_config
from ftdist.errors import ConfigError, DataError, FtdistError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "FtdistError", "RunConfig", "Trainer", "load_config", "train"]


def __getattr__(name: str):
    # The trainer pulls in transformers and torch; `import ftdist` for config work stays fast.
    if name in ("Trainer", "train", "TrainResult"):
        from ftdist import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'ftdist' has no attribute {name!r}")
