"""The exception types that decide how a failure is reported: bad user input (exit code 2), a forecast that cannot
be scored (the trial fails, the study goes on), and which errors mean "these params cannot run"."""


class BadInput(Exception):
    """Input the user must fix: the message names the file / field / value and what to do."""


class ForecastError(Exception):
    """A forecast that cannot be scored (NaN / inf samples, out of memory): the trial fails, the study goes on."""


UNSCORABLE = (ForecastError, KeyError, ValueError, TypeError)
"""What scoring raises for params that cannot run with this model in this version: a param it needs is missing
(KeyError), a value it does not accept (ValueError, TypeError), forecasts that are not finite (ForecastError)."""


def unscorable_reason(exc: Exception) -> str:
    """One phrase on why params could not be scored (an `UNSCORABLE` exception)."""
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r} param" if exc.args else "a param is missing"
    return str(exc) or type(exc).__name__
