"""Errors a user can cause. Entry points print them as one line; they are never tracebacks."""


class UserError(Exception):
    """Bad input or an unreachable dependency, with a message that says what to do."""


class DatabaseUnavailable(UserError):
    """The database URL is malformed or no server answers."""
