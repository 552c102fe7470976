"""Typed, validated run configuration. See `RunConfig` for the sections and `load_config` for loading."""

from ftdist.config.loader import dump_config, load_config, parse_override
from ftdist.config.run import RunConfig

__all__ = ["RunConfig", "dump_config", "load_config", "parse_override"]
