"""The names that become file names (`<data-dir>/<SYMBOL>.csv`, `<best-dir>/<model>/<SYMBOL>.json`): safe symbols
and the registry of model names. Apart from pandas and torch, so that reading committed configs (`status`, `best`)
loads neither."""

from __future__ import annotations

import re

from orchestrator.errors import BadInput

_SYMBOL = re.compile(r"[A-Za-z0-9._-]+")
MODELS = {
    "fhs": "orchestrator.models.fhs:FHSForecaster",
    "toto": "orchestrator.models.toto:TotoForecaster",
    "kronos": "orchestrator.models.kronos:KronosForecaster",
    "toto2": "orchestrator.models.toto2:Toto2Forecaster",
}
"""Model name -> its Forecaster class (`models.base.forecaster_class` imports it on first use)."""


def check_model(model: str) -> str:
    """Return `model` if it is a registered model name, else raise BadInput (before it becomes a path)."""
    if model not in MODELS:
        raise BadInput(f"model {model!r}: unknown; choose one of {', '.join(MODELS)}")
    return model


def check_symbol(symbol: str) -> str:
    """Return `symbol` if it is safe to use in file names, else raise BadInput."""
    if not _SYMBOL.fullmatch(symbol) or ".." in symbol:
        raise BadInput(
            f"symbol {symbol!r}: use only letters, digits, '.', '_' and '-' (and no '..'), e.g. BTCUSD"
        )
    return symbol
