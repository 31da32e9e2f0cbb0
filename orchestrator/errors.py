"""The one exception type for bad user input (exit code 2)."""


class BadInput(Exception):
    """Input the user must fix: the message names the file / field / value and what to do."""
