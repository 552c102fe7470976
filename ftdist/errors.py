"""User-facing errors.

Anything a user can fix (a bad config key, a missing file, an impossible combination) raises
`FtdistError`. The CLI prints its message as one paragraph and exits non-zero without a traceback;
everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class FtdistError(Exception):
    """An error caused by the user's input, with a message that says how to fix it."""


class ConfigError(FtdistError):
    """The run config is invalid: unknown key, wrong type, or an impossible combination."""


class DataError(FtdistError):
    """The training data is missing, empty, or too small for the requested setup."""


class FtdistWarning(UserWarning):
    """ftdist did something other than what the config literally asked, and says so once (the CLI prints it as
    one `ftdist: note:` line, without the library frame that raised it)."""
