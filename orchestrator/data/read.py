"""Reading OHLCV CSVs as users have them (header spellings, time formats, price columns, missing cells), and
validating them into a `Series`: one bad cell is refused with its file, line, column and value. Numbers are
read by `numbers`."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from orchestrator.data.numbers import cell_at, decimal_mark, is_missing, numbers, numeric
from orchestrator.errors import BadInput
from orchestrator.symbols import check_symbol  # noqa: F401 (re-exported by orchestrator.data)

PRICE_COLUMNS = ("open", "high", "low", "close")
ALL_COLUMNS = ("timestamp", *PRICE_COLUMNS, "volume")
TIME_COLUMNS = ("date", "datetime", "time", "timestamp", "observation_date")  # the last: FRED downloads
EPOCH_MS = 1e11  # integer times from here up are epoch milliseconds (1e11 s would be the year 5138)
EPOCH_MAX = 1e14  # ... and from here up they are not times at all (1e14 ms is the year 5138)
SEPARATORS = (",", ";", "\t")  # the first wins a tie
_DAY_MONTH = re.compile(r"%[dm]([/.-])%[dm]")


@dataclass(frozen=True)
class Series:
    """One symbol's validated bars, oldest first; `frame` has a RangeIndex.

    `price` is the file's column read as close ("close", "adj_close" or another named column); `dropped` holds the
    file line numbers of rows dropped for missing values (only with drop_missing); `separator` and `decimal_comma`
    say how the file was read.
    """

    symbol: str
    path: Path
    frame: pd.DataFrame
    sha256: str
    price: str = "close"
    dropped: tuple[int, ...] = ()
    separator: str = ","
    decimal_comma: bool = False

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def last_timestamp(self) -> str:
        return self.frame["timestamp"].iloc[-1].isoformat()

    @property
    def close(self) -> np.ndarray:
        return self.frame["close"].to_numpy(dtype=np.float64)

    def bars_sha256(self, rows: int | None = None, start: int = 0) -> str:
        """Fingerprint of the bars before row `rows` (all by default), from row `start`, as read (times and values):
        unchanged when bars are only appended."""
        frame = self.frame.iloc[start:rows]
        digest = hashlib.sha256(frame["timestamp"].to_numpy("datetime64[ns]").tobytes())
        for column in frame.columns[1:]:
            digest.update(column.encode() + frame[column].to_numpy(np.float64).tobytes())
        return digest.hexdigest()

    @property
    def dropped_note(self) -> str:
        """One line on the rows dropped for missing values, '' when none."""
        if not self.dropped:
            return ""
        lines = ", ".join(map(str, self.dropped[:5])) + (", ..." if len(self.dropped) > 5 else "")
        return f"{self.path}: dropped {len(self.dropped)} row(s) with missing values (line {lines})"

    @property
    def format_note(self) -> str:
        """One line on how a file that is not plain comma-separated with decimal points was read, '' for one that is."""
        if self.separator == "," and not self.decimal_comma:
            return ""
        separated = {",": "comma", ";": "semicolon", "\t": "tab"}[self.separator]
        numbers = ", numbers with a decimal comma ('1.234,56' is 1234.56)" if self.decimal_comma else ""
        return f"{self.path}: read as {separated}-separated{numbers}"

    @property
    def notes(self) -> list[str]:
        """What the user should know about how the file was read."""
        return [note for note in (self.format_note, self.dropped_note) if note]


def csv_path(data_dir: Path, symbol: str) -> Path:
    return Path(data_dir) / f"{check_symbol(symbol)}.csv"


def symbols_in(data_dir: Path) -> list[str]:
    """Every symbol with a CSV in `data_dir`."""
    found = sorted(p.stem for p in Path(data_dir).glob("*.csv"))
    if not found:
        raise BadInput(f"{data_dir}: no <SYMBOL>.csv files; pass --symbols or --data-dir DIR")
    return found


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_series(
    data_dir: Path,
    symbol: str,
    required: tuple[str, ...] = ("close",),
    optional: tuple[str, ...] = (),
    price: str | None = None,
    drop_missing: bool = False,
    dayfirst: bool = False,
    decimal: str = "auto",
) -> Series:
    """Read `<data_dir>/<symbol>.csv` and validate the columns a model needs.

    Fields are separated by ',', ';' or a tab (the one the header line holds most). Numbers have one decimal mark
    per file: `decimal` ('.' or ','), or with "auto" the one the first number that shows it uses ('1,5', '1.000,50',
    '1,000,000' show ','; '1.5', '1,000.50' show '.'); the other mark groups thousands. A file where nothing shows
    it but a number reads both ways ('1,000') is refused: `decimal` settles it. A row with more fields than the
    header is refused; blank lines are skipped, and every message names the file's real line.

    Headers match in any case, with spaces / dashes read as '_'. The time column is the one named date, datetime,
    time or timestamp. close is read from `price` when given, else from close, else from the only numeric column;
    with price="adj_close", open / high / low are scaled by adj_close / close. `required` columns must be present;
    `optional` ones are used when present. Missing cells (blank, '.', NaN, null, NA, N/A) are refused, or their rows
    dropped with `drop_missing`. Prices must be finite and > 0, volume finite and >= 0, timestamps parseable (one
    format per file; numeric day/month dates month-first unless `dayfirst`), strictly increasing and unique.
    """
    path = csv_path(data_dir, symbol)
    if not path.is_file():
        raise BadInput(f"{path}: no such file; put {symbol}'s bars there or pass --data-dir DIR")
    raw, headers, separator = _read_csv(path)
    decimal_comma, decided_by = decimal_mark(path, raw, headers, decimal, TIME_COLUMNS)
    time = _time_column(path, headers)
    source = _price_column(path, raw, headers, time, price, decimal_comma)
    others = [c for c in ALL_COLUMNS[1:] if c != "close" and (c in required or (c in optional and c in raw))]
    scaled = [c for c in others if c in PRICE_COLUMNS] if source == "adj_close" else []
    needed = [time, source, *others, *(["close"] if scaled else [])]
    missing = [c for c in needed if c not in raw]
    if missing:
        raise BadInput(
            f"{path}: missing column(s) {', '.join(missing)}; found headers {', '.join(headers.values())}; "
            f"the header needs {', '.join(dict.fromkeys(needed))}"
        )
    raw, dropped = _missing_cells(path, raw, headers, [c for c in raw if c in needed], time, drop_missing)
    if raw.empty:
        left = f" left after dropping {len(dropped)} with missing values" if dropped else ""
        raise BadInput(f"{path}: no rows{left}; add bars to the file")
    frame = pd.DataFrame({"timestamp": _timestamps(path, raw[time], headers[time], dayfirst)})
    values = {c: numbers(path, raw[c], headers[c], volume=c == "volume" and c != source, decimal_comma=decimal_comma,
                         decided_by=decided_by)
              for c in dict.fromkeys(needed[1:])}
    for column in ALL_COLUMNS[1:]:
        if column == "close":
            frame["close"] = values[source]
        elif column in others:
            factor = values["adj_close"] / values["close"] if column in scaled else 1.0
            frame[column] = values[column] * factor
    return Series(symbol=symbol, path=path, frame=frame.reset_index(drop=True), sha256=file_sha256(path),
                  price=source, dropped=dropped, separator=separator, decimal_comma=decimal_comma)


def canonical(header: str) -> str:
    """A header as matched: lowercase, surrounding spaces stripped, inner spaces and dashes as '_'."""
    return re.sub(r"[\s-]+", "_", str(header).strip().lower())


def _read_csv(path: Path) -> tuple[pd.DataFrame, dict[str, str], str]:
    """(the file's cells as text under canonical column names, indexed by their line in the file; canonical name ->
    header as written; the separator).

    The separator is the one of `SEPARATORS` that splits the header line into the most fields. Blank lines are
    skipped, a row with more fields than the header is refused, missing trailing fields are missing cells.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not a readable CSV ({str(exc).splitlines()[0]}); fix the file") from None
    first = next((line for line in text.split("\n") if line.strip()), "")
    separator = max(SEPARATORS, key=lambda sep: len(next(csv.reader([first], delimiter=sep))))
    reader = csv.reader(io.StringIO(text), delimiter=separator)
    header: list[str] | None = None
    rows, lines, line = [], [], 0
    try:
        for fields in reader:
            start, line = line + 1, reader.line_num
            if not any(field.strip() for field in fields):
                continue
            if header is None:
                header = [field.strip() for field in fields]
                continue
            if len(fields) > len(header):
                raise BadInput(_extra_fields(path, start, fields, header, separator))
            rows.append(fields + [""] * (len(header) - len(fields)))
            lines.append(start)
    except csv.Error as exc:
        raise BadInput(f"{path}: line {line + 1}: not a readable CSV ({exc}); fix the file") from None
    if header is None:
        raise BadInput(f"{path}: empty file; it needs a header line (e.g. date,close) and one row per bar")
    headers: dict[str, str] = {}
    for written in header:
        name = canonical(written)
        if name in headers:
            raise BadInput(f"{path}: headers {headers[name]!r} and {written!r} both read as {name!r}; "
                           "rename or remove one")
        headers[name] = written
    return pd.DataFrame(rows, columns=list(headers), index=lines, dtype=str), headers, separator


def _extra_fields(path: Path, line: int, fields: list[str], header: list[str], separator: str) -> str:
    """A row with more fields than the header: in a comma-separated file, most likely decimal commas."""
    name = {",": "','", ";": "';'", "\t": "tab"}[separator]
    hint = ("decimal commas? write numbers with '.' (100.5), or separate the fields with ';'" if separator == ","
            else "a stray separator? quote the field or remove it")
    return (f"{path}: line {line}: {len(fields)} fields ({separator.join(fields)!r}), but the header has "
            f"{len(header)} ({separator.join(header)!r}), separated by {name}; {hint}")


def _time_column(path: Path, headers: dict[str, str]) -> str:
    """The one column named date, datetime, time or timestamp."""
    found = [c for c in headers if c in TIME_COLUMNS]
    if len(found) == 1:
        return found[0]
    if found:
        named = " and ".join(repr(headers[c]) for c in found)
        raise BadInput(f"{path}: {len(found)} time columns, {named}; keep one, or rename the others")
    raise BadInput(f"{path}: no time column; found headers {', '.join(headers.values())}; name the time column "
                   f"{', '.join(TIME_COLUMNS[:-1])} or {TIME_COLUMNS[-1]} (any case)")


def _price_column(
    path: Path, raw: pd.DataFrame, headers: dict[str, str], time: str, price: str | None, decimal_comma: bool
) -> str:
    """The column read as close: `price` when given, else close, else the file's only numeric column."""
    found = ", ".join(headers.values())
    if price is not None:
        if canonical(price) not in raw:
            raise BadInput(f"{path}: --price {price!r}: no such column; found headers {found}; pass one of them")
        return canonical(price)
    if "close" in raw:
        return "close"
    candidates = [c for c in raw if c != time and numeric(raw[c], decimal_comma)]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        hint = f"pass --price NAME to read one of {', '.join(headers[c] for c in candidates)} as the close"
    else:
        hint = "the header needs close, or a single numeric price column, or pass --price NAME"
    raise BadInput(f"{path}: missing column(s) close; found headers {found}; {hint}")


def _missing_cells(
    path: Path, raw: pd.DataFrame, headers: dict[str, str], used: list[str], time: str, drop: bool
) -> tuple[pd.DataFrame, tuple[int, ...]]:
    """Refuse missing cells in the `used` columns, or with `drop` drop their rows (returning their line numbers)."""
    missing = raw[used].apply(is_missing)
    rows = missing.any(axis=1).to_numpy()
    if not rows.any():
        return raw, ()
    if drop:
        return raw[~rows], tuple(int(i) for i in raw.index[rows])
    row = int(np.flatnonzero(rows)[0])
    column = used[int(np.flatnonzero(missing.iloc[row].to_numpy())[0])]
    what = "date/time" if column == time else "finite number"
    raise BadInput(f"{cell_at(path, raw[column], row, headers[column])} is not a {what} (a missing value); "
                   "fill it or remove the row, or pass --drop-missing to drop such rows")


def _time_format(first: str, dayfirst: bool) -> str | None:
    """The format of a time column, from its first value: "epoch_s", "epoch_ms" or a strptime format.

    Eight digits are YYYYMMDD, other integers epoch seconds or milliseconds by magnitude; numeric day/month dates
    are month-first unless `dayfirst`. None when the value is no date/time.
    """
    if first.isascii() and first.isdigit():
        return "%Y%m%d" if len(first) == 8 else "epoch_ms" if int(first) >= EPOCH_MS else "epoch_s"
    with warnings.catch_warnings():  # pandas warns when its guess contradicts dayfirst; the order is fixed below
        warnings.simplefilter("ignore", UserWarning)
        fmt = guess_datetime_format(first)
    order = _DAY_MONTH.match(fmt or "")
    if order:
        sep = order.group(1)
        fmt = (f"%d{sep}%m" if dayfirst else f"%m{sep}%d") + fmt[order.end():]
    return fmt


def _parse_times(text: pd.Series, fmt: str) -> pd.Series:
    """Times in format `fmt` as UTC; NaT where a value is not in that format."""
    if not fmt.startswith("epoch"):
        parsed = pd.to_datetime(text, format=fmt, utc=True, errors="coerce")
        if "%S" in fmt:  # seconds with and without a fraction are one format (Python's isoformat writes both)
            other = fmt.replace("%S.%f", "%S") if "%S.%f" in fmt else fmt.replace("%S", "%S.%f")
            parsed = parsed.where(parsed.notna(), pd.to_datetime(text, format=other, utc=True, errors="coerce"))
        return parsed
    numbers = pd.to_numeric(text.where(text.str.fullmatch(r"\d+") & (text.str.len() != 8)), errors="coerce")
    ms = fmt == "epoch_ms"
    numbers = numbers.where(((numbers >= EPOCH_MS) == ms) & (numbers < EPOCH_MAX))
    return pd.to_datetime(numbers, unit="ms" if ms else "s", utc=True, errors="coerce")


def _timestamps(path: Path, text: pd.Series, header: str, dayfirst: bool) -> pd.Series:
    """The time column as UTC timestamps: one format (that of the first row), strictly increasing."""
    text = text.str.strip()
    fmt = _time_format(text.iloc[0], dayfirst)
    parsed = _parse_times(text, fmt) if fmt else pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        row = int(bad[0])
        dates = ""
        if _DAY_MONTH.match(fmt or ""):
            dates = " (read day-first; leave out --dayfirst for month-first)" if dayfirst else \
                " (read month-first; pass --dayfirst for day-first)"
        if row:
            problem = f"not a date/time like line {int(text.index[0])}'s {text.iloc[0]!r}{dates}; use one format"
        else:
            problem = (f"not a date/time{dates}; use ISO (2024-01-02, 2024-01-02 09:30:00-05:00), US (1/2/2024), "
                       "YYYYMMDD or epoch seconds / milliseconds")
        raise BadInput(f"{cell_at(path, text, row, header)} is {problem}; fix or remove the row")
    step = parsed.diff().dt.total_seconds().to_numpy()[1:]
    for problem, hits in (("duplicates the row before", step == 0), ("is earlier than the row before", step < 0)):
        where = np.flatnonzero(hits)
        if where.size:
            raise BadInput(f"{cell_at(path, text, int(where[0]) + 1, header)} {problem}; "
                           "sort the rows by time and drop duplicates")
    return parsed
