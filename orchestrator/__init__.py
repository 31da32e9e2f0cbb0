"""Optuna study orchestrator for stochastic time-series forecasters."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("orchestrator")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"


def __getattr__(name: str) -> object:
    """`orchestrator.forecast` (lifecycle/forecasts.py), imported on first use: importing the package stays light
    (no torch, no pandas), and the package's base layer imports no higher layer when it is imported."""
    if name == "forecast":
        import importlib

        return importlib.import_module("orchestrator.lifecycle.forecasts").forecast
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
