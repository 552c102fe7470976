"""The one launcher contract: a typed profile plus `submit(config, profile)`.

A launcher (local torchrun, Slurm via submitit, Ray Train) is a `Launcher` subclass with a `LauncherProfile`
model. Everything every launcher shares is here, once:
  * the command line: CONFIG, key=value overrides, `--profile FILE`, and one flag per scalar profile field
    (generated from the model, with its docstring as help), plus the launcher's own options;
  * precedence: the run config file < its key=value overrides; the profile file < the profile flags;
  * `preflight(config, world)` with the world the launcher is about to start, before anything is submitted,
    so a bad combination is refused here (on the login node), not after queueing.
Profiles live in `cluster_configs/<launcher>/*.yaml` and are flat mappings of the profile's fields.
"""

from __future__ import annotations

import argparse
import types
import typing
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import ValidationError

from ftdist.commands import add_config_arguments
from ftdist.config.base import Section
from ftdist.errors import FtdistError

SCALARS = (int, float, str, bool)


class LauncherProfile(Section):
    """Where and how big a job is. Each scalar field is also a command-line flag (`--gpus-per-node 8`)."""

    @classmethod
    def flag_fields(cls) -> dict[str, Any]:
        """The fields that become flags: those whose values are one scalar (not lists or mappings)."""
        return {name: field for name, field in cls.model_fields.items() if _is_scalar(field.annotation)}

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser) -> None:
        for name, field in cls.flag_fields().items():
            help_text = (field.description or "").split("\n")[0].replace("%", "%%")  # argparse %-formats help
            parser.add_argument(
                f"--{name.replace('_', '-')}", dest=name, type=_parse_scalar, default=None, help=help_text
            )

    @classmethod
    def load(cls, path: str | Path | None, flags: dict[str, Any]) -> LauncherProfile:
        """The profile file (if any), then the flags that were given; unknown keys list the valid ones."""
        raw: dict[str, Any] = {}
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise FtdistError(f"--profile {path} does not exist; use one of {_shipped(cls)} or a copy of it")
            raw = yaml.safe_load(path.read_text()) or {}
            if not isinstance(raw, dict):
                raise FtdistError(f"profile {path} must be a mapping of {cls.__name__} keys")
        raw.update({key: value for key, value in flags.items() if value is not None})
        try:
            return cls(**raw)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            valid = ", ".join(cls.model_fields)
            raise FtdistError(f"profile {path or '(flags)'}: {problems} (valid keys: {valid})") from None


class Launcher(ABC):
    """One way to start a run's processes. Subclasses set the class attributes and implement two methods."""

    name: ClassVar[str]
    help: ClassVar[str]
    profile_model: ClassVar[type[LauncherProfile]]
    default_profile: ClassVar[str | None] = None
    """A profile file used when `--profile` is not given (relative to the working directory)."""

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        """The launcher's own options (not profile fields), e.g. --dry-run."""
        return None

    @abstractmethod
    def world(self, config, profile: LauncherProfile):
        """The `ftdist.preflight.World` this launcher will start for `config` with `profile`."""

    @abstractmethod
    def submit(self, config, profile: LauncherProfile, args: argparse.Namespace) -> int:
        """Start (or submit) the run; returns the exit status for the command line."""

    # --- shared by every launcher ------------------------------------------------------------------------------
    def add_parser(self, subparsers) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(
            self.name,
            help=self.help,
            description=type(self).__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        return self.configure(parser)

    def configure(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Every argument of this launcher on `parser` (a sub-command's, or a script's own)."""
        add_config_arguments(parser)
        parser.add_argument("--profile", default=self.default_profile, help="a profile YAML of the flags below")
        self.profile_model.add_flags(parser)
        self.add_options(parser)
        parser.add_argument(
            "--verbose", action="store_true", default=argparse.SUPPRESS, help="show third-party notices"
        )
        parser.set_defaults(handler=self.run)
        return parser

    def resolve(self, args: argparse.Namespace):
        """(config, profile) from the command line; see `prepare`."""
        if not Path(args.config).is_file():
            raise FtdistError(f"config file {args.config} does not exist; pass a run config YAML from cluster_configs/")
        flags = {name: getattr(args, name, None) for name in self.profile_model.flag_fields()}
        files = not getattr(args, "dry_run", False)  # a dry run reports missing files in its verdict instead
        return self.prepare(args.config, args.overrides, args.profile, flags, files=files)

    def prepare(self, config, overrides, profile: str | Path | None, flags: dict[str, Any], files: bool = True):
        """(config, profile): each with its precedence, then preflight for the world they describe (with
        `files`: the files the config names must exist here, as they will on the nodes of a shared filesystem)."""
        from ftdist.config import load_config
        from ftdist.preflight import preflight

        resolved = load_config(config, overrides)
        loaded = self.profile_model.load(profile, flags)
        preflight(resolved, self.world(resolved, loaded), files=files)
        return resolved, loaded

    def run(self, args: argparse.Namespace) -> int:
        config, profile = self.resolve(args)
        return self.submit(config, profile, args)


def _is_scalar(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return True
    if origin in (typing.Union, types.UnionType):
        return all(_is_scalar(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    if typing.get_origin(annotation) is typing.Annotated:
        return _is_scalar(typing.get_args(annotation)[0])
    return annotation in SCALARS


def _parse_scalar(text: str) -> Any:
    """A flag value as YAML reads it: `8` -> 8, `true` -> True; `1:30:00` stays text (YAML 1.1 would read it
    as a base-60 number)."""
    if ":" in text:
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, SCALARS) else text


def _shipped(profile_model: type[LauncherProfile]) -> str:
    folder = getattr(profile_model, "shipped_folder", None)
    return f"{folder}/*.yaml" if folder else "the shipped profiles"
