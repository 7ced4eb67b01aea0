"""User errors: bad input that the `fct` command reports in one line, with what to do about it."""

from __future__ import annotations


class UserError(Exception):
    """Bad input (a preset, a file, an argument): the message says what is wrong, where (the file
    or key) and how to fix it. Anything else that escapes a command is a bug."""


class DataError(UserError, ValueError):
    """A data set's files are missing, malformed or do not fit the preset's class split."""
