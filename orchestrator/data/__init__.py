"""OHLCV data: reading and validating CSVs (`read`), numbers as written in them (`numbers`: decimal mark,
thousands separators, missing cells), earlier bars rescaled by a dividend or split adjustment (`adjust`), the
scored windows and model contexts (`windows`), and generated bars (`synthetic`). The public names are
re-exported here.

Imports: the base modules (`errors`, `symbols`).
"""

from orchestrator.data.read import (
    ALL_COLUMNS, PRICE_COLUMNS, TIME_COLUMNS, Series, canonical, check_symbol, csv_path, file_sha256, load_series,
    symbols_in,
)
from orchestrator.data.adjust import Rescale, bars_record, earlier_rows, rescaled
from orchestrator.data.synthetic import synthetic_ohlcv, write_synthetic
from orchestrator.data.windows import MIN_VALIDATION_WINDOWS, Contexts, Windows, make_windows

__all__ = [
    "ALL_COLUMNS", "MIN_VALIDATION_WINDOWS", "PRICE_COLUMNS", "TIME_COLUMNS", "Contexts", "Rescale", "Series",
    "Windows", "bars_record", "canonical", "check_symbol", "csv_path", "earlier_rows", "file_sha256", "load_series",
    "make_windows", "rescaled", "symbols_in",
    "synthetic_ohlcv", "write_synthetic",
]
