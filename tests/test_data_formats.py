"""CSV dialects users actually have: header spellings, date formats, adj close, single price columns, missing cells."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestrator.data import load_series
from orchestrator.errors import BadInput

OHLCV = ("open", "high", "low", "volume")
YAHOO = """Date,Open,High,Low,Close,Adj Close,Volume
1/4/1999,10.0,12.0,9.0,11.0,5.5,1000
1/5/1999,11.0,13.0,10.0,12.0,6.0,2000
1/13/1999,12.0,12.5,11.0,12.0,9.0,0
"""
FRED = """DATE,DCOILWTICO
2024-01-01,.
2024-01-02,70.38
2024-01-03,72.81
2024-01-04,
2024-01-05,73.81
"""


def load(tmp_path: Path, text: str, *args, **kwargs):
    (tmp_path / "X.csv").write_text(text)
    return load_series(tmp_path, "X", *args, **kwargs)


def refusal(tmp_path: Path, text: str, *args, **kwargs) -> str:
    with pytest.raises(BadInput) as info:
        load(tmp_path, text, *args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "X.csv"))
    return message


def stamps(series) -> list[str]:
    return [t.isoformat() for t in series.frame["timestamp"]]


def test_headers_match_in_any_case_with_spaces(tmp_path: Path) -> None:
    series = load(tmp_path, " TimeStamp , CLOSE ,Volume\n2024-01-02,10.5,7\n2024-01-03,11,8\n", optional=("volume",))
    assert list(series.frame.columns) == ["timestamp", "close", "volume"]
    assert series.close.tolist() == [10.5, 11.0] and series.frame["volume"].tolist() == [7.0, 8.0]
    assert stamps(series) == ["2024-01-02T00:00:00+00:00", "2024-01-03T00:00:00+00:00"]
    assert series.price == "close" and series.dropped == () and series.dropped_note == ""
    assert isinstance(series.frame.index, pd.RangeIndex)


@pytest.mark.parametrize("name", ["date", "Datetime", "TIME", "timestamp"])
def test_each_time_column_name_is_accepted(tmp_path: Path, name: str) -> None:
    series = load(tmp_path, f"{name},close\n2024-01-02,1\n2024-01-03,2\n")
    assert stamps(series)[1] == "2024-01-03T00:00:00+00:00"


def test_two_time_columns_are_refused_naming_both(tmp_path: Path) -> None:
    message = refusal(tmp_path, "Date,Time,Close\n2024-01-02,09:30,1\n")
    assert "'Date' and 'Time'" in message and "keep one" in message


def test_no_time_column_lists_found_and_accepted_headers(tmp_path: Path) -> None:
    message = refusal(tmp_path, "Day,Close\n2024-01-02,1\n")
    assert "no time column; found headers Day, Close" in message
    assert "date, datetime, time, timestamp or observation_date" in message


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("1999-01-04", "1999-01-05", "1999-01-05T00:00:00+00:00"),
        ("1/4/1999", "12/31/1999", "1999-12-31T00:00:00+00:00"),  # US: month first
        ("01/04/1999 09:30", "01/04/1999 16:00", "1999-01-04T16:00:00+00:00"),
        ("2024-01-02 09:30:00-05:00", "2024-03-11 09:30:00-04:00", "2024-03-11T13:30:00+00:00"),  # DST offset
        ("2024-01-02T09:30:00Z", "2024-01-02T09:31:00.500Z", "2024-01-02T09:31:00.500000+00:00"),
        ("2024-01-02T09:30:00.25+00:00", "2024-01-02T09:31:00+00:00", "2024-01-02T09:31:00+00:00"),
        ("1704153600", "1704157200", "2024-01-02T01:00:00+00:00"),  # epoch seconds
        ("1704153600000", "1704153660000", "2024-01-02T00:01:00+00:00"),  # epoch milliseconds
        ("915408000", "915494400", "1999-01-05T00:00:00+00:00"),  # nine-digit epoch seconds
        ("19990104", "19990105", "1999-01-05T00:00:00+00:00"),  # YYYYMMDD, not epoch seconds
    ],
)
def test_time_formats_parse_to_utc(tmp_path: Path, first: str, second: str, expected: str) -> None:
    series = load(tmp_path, f"timestamp,close\n{first},1\n{second},2\n")
    assert stamps(series)[1] == expected
    assert str(series.frame["timestamp"].dt.tz) == "UTC"


def test_slash_dates_are_month_first_unless_dayfirst(tmp_path: Path) -> None:
    text = "date,close\n4/1/1999,1\n5/1/1999,2\n"
    assert stamps(load(tmp_path, text))[0] == "1999-04-01T00:00:00+00:00"
    assert stamps(load(tmp_path, text, dayfirst=True)) == ["1999-01-04T00:00:00+00:00", "1999-01-05T00:00:00+00:00"]
    assert stamps(load(tmp_path, "date,close\n1999-01-04,1\n", dayfirst=True)) == ["1999-01-04T00:00:00+00:00"]


def test_day_first_dates_without_dayfirst_are_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, "date,close\n04/01/1999,1\n13/01/1999,2\n")
    assert "line 3, column 'date': value '13/01/1999' is not a date/time like line 2's '04/01/1999'" in message
    assert "pass --dayfirst" in message
    message = refusal(tmp_path, "date,close\n1/13/1999,1\n", dayfirst=True)
    assert "line 2, column 'date': value '1/13/1999' is not a date/time" in message and "--dayfirst" in message


@pytest.mark.parametrize(
    ("rows", "line", "value"),
    [
        (["2024-01-02", "1/3/2024"], 3, "1/3/2024"),  # ISO, then US
        (["2024-01-02", "2024-01-03 09:30"], 3, "2024-01-03 09:30"),  # date, then date and time
        (["2024-01-02 09:30:00-05:00", "2024-01-02 10:30:00"], 3, "2024-01-02 10:30:00"),  # zone, then none
        (["1704153600", "1704153660000"], 3, "1704153660000"),  # epoch s, then ms
        (["1704153600", "2024-01-02"], 3, "2024-01-02"),
        (["19990104", "19990105", "915667200"], 4, "915667200"),  # YYYYMMDD, then epoch seconds
        (["yesterday", "2024-01-02"], 2, "yesterday"),
        (["100000000000000000000", "1"], 2, "100000000000000000000"),  # past any epoch
    ],
)
def test_mixed_or_unknown_time_formats_name_the_first_offending_line(
    tmp_path: Path, rows: list[str], line: int, value: str
) -> None:
    text = "timestamp,close\n" + "".join(f"{row},1\n" for row in rows)
    message = refusal(tmp_path, text)
    assert f"line {line}, column 'timestamp': value '{value}' is not a date/time" in message


def test_dates_are_ordered_as_dates_not_text(tmp_path: Path) -> None:
    assert load(tmp_path, "date,close\n12/31/1999,1\n1/3/2000,2\n").rows == 2
    message = refusal(tmp_path, "date,close\n1/3/2000,1\n12/31/1999,2\n")
    assert "line 3, column 'date': value '12/31/1999' is earlier than the row before" in message


def test_yahoo_file_uses_close_by_default(tmp_path: Path) -> None:
    series = load(tmp_path, YAHOO, optional=OHLCV)
    assert series.price == "close"
    assert series.close.tolist() == [11.0, 12.0, 12.0]
    assert series.frame["open"].tolist() == [10.0, 11.0, 12.0]
    assert stamps(series)[2] == "1999-01-13T00:00:00+00:00"


@pytest.mark.parametrize("price", ["adj_close", "Adj Close", "adj-close"])
def test_adj_close_scales_open_high_low(tmp_path: Path, price: str) -> None:
    series = load(tmp_path, YAHOO, optional=OHLCV, price=price)
    frame = series.frame
    assert series.price == "adj_close"
    assert series.close.tolist() == [5.5, 6.0, 9.0]
    np.testing.assert_allclose(frame["open"], [10.0 * 0.5, 11.0 * 0.5, 12.0 * 0.75])
    np.testing.assert_allclose(frame["high"], [12.0 * 0.5, 13.0 * 0.5, 12.5 * 0.75])
    np.testing.assert_allclose(frame["low"], [9.0 * 0.5, 10.0 * 0.5, 11.0 * 0.75])
    assert frame["volume"].tolist() == [1000.0, 2000.0, 0.0]  # volume is not scaled
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()


def test_adj_close_without_close_cannot_scale(tmp_path: Path) -> None:
    text = "date,open,adj_close\n2024-01-02,1,2\n"
    assert load(tmp_path, text, price="adj_close").close.tolist() == [2.0]  # nothing to scale: fine
    message = refusal(tmp_path, text, optional=("open",), price="adj_close")
    assert "missing column(s) close; found headers date, open, adj_close" in message


def test_single_price_column_is_the_close(tmp_path: Path) -> None:
    series = load(tmp_path, "Date,Symbol,Price\n2024-01-02,CL,70.5\n2024-01-03,CL,71.25\n")
    assert series.price == "price" and series.close.tolist() == [70.5, 71.25]


def test_several_price_candidates_are_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, "Date,Open,Last,Volume\n2024-01-02,1,2,3\n")
    assert "missing column(s) close; found headers Date, Open, Last, Volume" in message
    assert "pass --price NAME to read one of Open, Last, Volume as the close" in message


def test_no_numeric_column_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, "Date,Name\n2024-01-02,oil\n")
    assert "missing column(s) close; found headers Date, Name" in message and "--price NAME" in message


def test_price_names_the_close_column(tmp_path: Path) -> None:
    series = load(tmp_path, "date,close,last\n2024-01-02,1,7.5\n", price="Last")
    assert series.price == "last" and series.close.tolist() == [7.5]
    message = refusal(tmp_path, "date,close,last\n2024-01-02,1,7.5\n", price="mid")
    assert "--price 'mid': no such column; found headers date, close, last" in message


def test_fred_file_with_dots_is_refused_without_drop_missing(tmp_path: Path) -> None:
    message = refusal(tmp_path, FRED)
    assert "line 2, column 'DCOILWTICO': value '.' is not a finite number (a missing value)" in message
    assert "--drop-missing" in message


def test_fred_file_loads_with_drop_missing(tmp_path: Path) -> None:
    series = load(tmp_path, FRED, drop_missing=True)
    assert series.price == "dcoilwtico"
    assert series.close.tolist() == [70.38, 72.81, 73.81]
    assert stamps(series) == ["2024-01-02T00:00:00+00:00", "2024-01-03T00:00:00+00:00", "2024-01-05T00:00:00+00:00"]
    assert series.dropped == (2, 5)
    assert series.dropped_note.endswith("dropped 2 row(s) with missing values (line 2, 5)")
    assert isinstance(series.frame.index, pd.RangeIndex)
    assert series.sha256 == hashlib.sha256(FRED.encode()).hexdigest()


@pytest.mark.parametrize("cell", ["", " ", ".", "NaN", "nan", "null", "NULL", "NA", "n/a", "N/A"])
def test_missing_cells_are_refused_or_dropped(tmp_path: Path, cell: str) -> None:
    text = f"date,close,volume\n2024-01-02,1,5\n2024-01-03,{cell},6\n2024-01-04,3,7\n"
    message = refusal(tmp_path, text, optional=("volume",))
    assert f"line 3, column 'close': value '{cell}' is not a finite number (a missing value)" in message
    series = load(tmp_path, text, optional=("volume",), drop_missing=True)
    assert series.close.tolist() == [1.0, 3.0] and series.frame["volume"].tolist() == [5.0, 7.0]
    assert series.dropped == (3,)


def test_missing_time_is_refused_or_dropped(tmp_path: Path) -> None:
    text = "date,close\n2024-01-02,1\nN/A,2\n2024-01-04,3\n"
    assert "line 3, column 'date': value 'N/A' is not a date/time (a missing value)" in refusal(tmp_path, text)
    assert load(tmp_path, text, drop_missing=True).dropped == (3,)


def test_missing_cells_in_unused_columns_are_ignored(tmp_path: Path) -> None:
    series = load(tmp_path, "date,close,volume\n2024-01-02,1,\n2024-01-03,2,.\n")
    assert series.rows == 2 and series.dropped == () and list(series.frame.columns) == ["timestamp", "close"]


def test_line_numbers_stay_right_after_dropping_rows(tmp_path: Path) -> None:
    text = "date,close\n2024-01-02,.\n2024-01-03,.\n2024-01-04,1\n2024-01-05,-2\n"
    message = refusal(tmp_path, text, drop_missing=True)
    assert "line 5, column 'close': value '-2' is not a positive price" in message


def test_dropping_every_row_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, "date,close\n2024-01-02,.\n", drop_missing=True)
    assert "no rows left after dropping 1 with missing values" in message


def test_refusals_name_the_header_as_written(tmp_path: Path) -> None:
    message = refusal(tmp_path, YAHOO.replace("12.0,6.0,2000", "12.0,-6.0,2000"), price="adj_close")
    assert "line 3, column 'Adj Close': value '-6.0' is not a positive price; fix or remove the row" in message
    message = refusal(tmp_path, YAHOO.replace("13.0,10.0", "13.0,abc"), optional=OHLCV)
    assert "line 3, column 'Low': value 'abc' is not a finite number" in message


def test_headers_that_read_the_same_are_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, "date,Adj Close,adj_close\n2024-01-02,1,2\n")
    assert "headers 'Adj Close' and 'adj_close' both read as 'adj_close'" in message


def test_missing_required_column_lists_the_headers(tmp_path: Path) -> None:
    message = refusal(tmp_path, "Date,Close\n2024-01-02,1\n", required=("close", "open"))
    assert "missing column(s) open; found headers Date, Close; the header needs date, close, open" in message


def test_excel_saved_file_with_bom_and_crlf_loads(tmp_path: Path) -> None:
    (tmp_path / "X.csv").write_bytes("\ufeffDate,Close\r\n1/4/1999,1\r\n1/5/1999,2\r\n".encode())
    series = load_series(tmp_path, "X")
    assert stamps(series) == ["1999-01-04T00:00:00+00:00", "1999-01-05T00:00:00+00:00"]
