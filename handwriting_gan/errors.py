"""The project's exception types for user mistakes, and the exit codes the command line maps them to.

Every user-facing mistake (a bad override, missing data, an unreadable checkpoint) raises a subclass of
`UserError` whose message names the value, what was expected and what to do. The command line prints
that message without a traceback and exits with the type's own code.
"""


class UserError(Exception):
    """A mistake the user can fix; printed without a traceback."""

    exit_code = 2


class ConfigError(UserError):
    """A configuration value is missing, unknown or out of range."""

    exit_code = 3


class DataError(UserError):
    """Dataset files are missing, corrupt or do not match the configuration."""

    exit_code = 4


class CheckpointError(UserError):
    """A run folder, checkpoint or generator file cannot be used."""

    exit_code = 5


class DivergenceError(UserError):
    """Training produced a non-finite loss or weight."""

    exit_code = 6


def exit_with(error: UserError) -> None:
    """Print `error` as one line on stderr, without a traceback, and exit with its code."""
    import sys

    print(f"error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)
