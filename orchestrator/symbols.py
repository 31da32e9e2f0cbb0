"""Symbol names: which ones are safe in file names (`<data-dir>/<SYMBOL>.csv`, `<best-dir>/<model>/<SYMBOL>.json`).
Apart from pandas, so that reading committed configs (`status`) does not load it."""

from __future__ import annotations

import re

from orchestrator.errors import BadInput

_SYMBOL = re.compile(r"[A-Za-z0-9._-]+")


def check_symbol(symbol: str) -> str:
    """Return `symbol` if it is safe to use in file names, else raise BadInput."""
    if not _SYMBOL.fullmatch(symbol) or ".." in symbol:
        raise BadInput(
            f"symbol {symbol!r}: use only letters, digits, '.', '_' and '-' (and no '..'), e.g. BTCUSD"
        )
    return symbol
