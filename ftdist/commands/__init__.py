"""Subcommands of the `ftdist` CLI, one module each (see ftdist.cli.COMMANDS)."""
