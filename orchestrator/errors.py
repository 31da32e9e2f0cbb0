"""The exception types that decide how a failure is reported: bad user input (exit code 2), a forecast that cannot
be scored (the trial fails, the study goes on)."""


class BadInput(Exception):
    """Input the user must fix: the message names the file / field / value and what to do."""


class ForecastError(Exception):
    """A forecast that cannot be scored (NaN / inf samples, out of memory): the trial fails, the study goes on."""
