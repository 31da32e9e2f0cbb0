"""Reading numbers as written in a CSV: the file's decimal mark ('1.234,56' or '1,234.56', or the `decimal`
setting), thousands separators, missing cells, and where a refused cell is (file, line, column, value)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.errors import BadInput

MISSING = frozenset({"", ".", "nan", "null", "na", "n/a"})  # cells that mean "no value" (compared lowercased)
_DECIMAL_COMMA = re.compile(r"\s*[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?\s*")  # 1.234,56  100,5  1234
_THOUSANDS_COMMA = re.compile(r"\s*[+-]?\d{1,3}(,\d{3})+(\.\d+)?\s*")  # 1,234.56  1,000
_NUMBER = r"[+-]?[\d.,]*\d[\d.,]*"  # a number written with digits and marks, read below by its marks
_ONE_GROUP = r"[+-]?[1-9]\d{{0,2}}{mark}\d{{3}}"  # 1,000 or 1.000: a thousands group or a decimal mark


def decimal_mark(
    path: Path, raw: pd.DataFrame, headers: dict[str, str], decimal: str, skip: tuple[str, ...]
) -> tuple[bool, str]:
    """(whether numbers use a decimal comma, where the file showed it): `decimal` when it is '.' or ','; else the
    mark of the earliest number that shows one, in the columns not in `skip` (the time columns). A number with both
    marks shows its last; two of one mark are thousands; one comma or dot shows itself unless it is followed by
    exactly three digits after 1-3 others ('1,000', '1.000': either). BadInput when only such numbers have a comma."""
    if decimal in (".", ","):
        return decimal == ",", ""
    first: dict[str, tuple[int, str, int]] = {}  # kind -> (line, column, position) of its earliest cell
    for column in raw:
        if column in skip:
            continue
        text = raw[column].str.strip()
        number = text.str.fullmatch(_NUMBER)
        commas, dots = text.str.count(","), text.str.count(r"\.")
        both, comma_last = (commas > 0) & (dots > 0), text.str.rfind(",") > text.str.rfind(".")
        one_comma, one_dot = (commas == 1) & (dots == 0), (dots == 1) & (commas == 0)
        grouped_comma = text.str.fullmatch(_ONE_GROUP.format(mark=","))
        kinds = {
            ",": both & comma_last | (dots > 1) | one_comma & ~grouped_comma,
            ".": both & ~comma_last | (commas > 1) | one_dot & ~text.str.fullmatch(_ONE_GROUP.format(mark=r"\.")),
            "?": one_comma & grouped_comma,
        }
        for kind, hits in kinds.items():
            where = np.flatnonzero((number & hits).to_numpy())
            if where.size and (kind not in first or int(raw.index[where[0]]) < first[kind][0]):
                first[kind] = (int(raw.index[where[0]]), column, int(where[0]))
    shown = sorted((first[k], k) for k in (",", ".") if k in first)
    if shown:
        (_, column, row), mark = shown[0]
        return mark == ",", cell_at(path, raw[column], row, headers[column])
    if "?" in first:
        _, column, row = first["?"]
        raise BadInput(
            f"{cell_at(path, raw[column], row, headers[column])} reads as a thousands separator or a decimal comma, "
            "and no number in the file tells which; pass --decimal . if 1,000 is one thousand, or --decimal , if it "
            "is 1.0; a study made on this file before may have read it the other way: add --fresh to start anew")
    return False, ""


def numeric(text: pd.Series, decimal_comma: bool) -> bool:
    """Whether every present cell of a column is a number (and at least one is present)."""
    present = text[~is_missing(text)]
    return not present.empty and bool(np.isfinite(_floats(present, decimal_comma)).all())


def _floats(text: pd.Series, decimal_comma: bool) -> np.ndarray:
    """Cells as floats, NaN where a cell is no number. With `decimal_comma`, '1.234,56' is 1234.56 and '100.5' no
    number (one format per file); without, '1,234.56' is 1234.56."""
    text = text.str.strip()
    if decimal_comma:
        text = text.where(text.str.fullmatch(_DECIMAL_COMMA)).str.replace(".", "", regex=False)
        text = text.str.replace(",", ".", regex=False)
    else:
        text = text.where(~text.str.fullmatch(_THOUSANDS_COMMA), text.str.replace(",", "", regex=False))
    return pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)


def is_missing(text: pd.Series) -> pd.Series:
    return text.str.strip().str.lower().isin(MISSING)


def numbers(path: Path, text: pd.Series, header: str, volume: bool, decimal_comma: bool,
            decided_by: str) -> np.ndarray:
    """A column as floats: finite, and > 0 for prices or >= 0 for volume; `decided_by`: the cell that showed the
    file's decimal mark."""
    values = _floats(text, decimal_comma)
    number = "a number in this file's format (decimal comma: 100,5 or 1.234,56)" if decimal_comma else "a finite number"
    if decided_by:
        number += f"; the decimal mark is that of {decided_by.removeprefix(f'{path}: ')} (--decimal sets it)"
    checks = [(~np.isfinite(values), f"is not {number}")]
    checks.append((values < 0, "is negative") if volume else (values <= 0, "is not a positive price"))
    for bad, problem in checks:
        where = np.flatnonzero(bad)
        if where.size:
            raise BadInput(f"{cell_at(path, text, int(where[0]), header)} {problem}; fix or remove the row")
    return values


def cell_at(path: Path, text: pd.Series, row: int, header: str) -> str:
    """Where cell `row` (position) of a column is: the index holds the file's line numbers and is never reset."""
    return f"{path}: line {int(text.index[row])}, column '{header}': value {text.iloc[row]!r}"
