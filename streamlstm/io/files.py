"""Row sources: Parquet, CSV and pandas frames, read as ``RowBatch`` es of
long-format rows (series id, timestamp, target, optional numeric features).

Every source goes through one path: pyarrow record batches -> ``_convert`` ->
``stream.RowBatch``.  Parquet is streamed record batch by record batch
(``ParquetFile.iter_batches`` over the needed columns only), CSV with pyarrow's
streaming reader, so memory stays flat however large the file.  A source
position is the number of rows already consumed (``RowBatch.position`` after a
batch); ``batches(start=n)`` resumes exactly there - Parquet by jumping to the
row group that holds row ``n``, CSV by re-reading and discarding.

Problems in the data come back two ways: a file that cannot be used at all
(missing, empty, corrupt, a column missing or of a non-numeric type) raises
``policy.DataError`` naming the file and column; a row that cannot be parsed (a
target ``"abc"``, a timestamp ``"yesterday"``, a null id) is flagged in
``RowBatch.problems`` and the runner's policy decides (``policy.py``).
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from streamlstm.stream.policy import (BAD_TIME, MISSING_ID, MISSING_TIME, NOT_A_NUMBER, DataError, Problem)
from streamlstm.stream.batch import RowBatch

DEFAULT_BATCH_ROWS = 16384
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".tsv")
_NAN_WORDS = {"nan", "+nan", "-nan"}


@dataclass(frozen=True)
class Columns:
    """Which columns hold what (the CLI's ``--series-col`` etc.)."""

    series: str = "series_id"
    time: str = "timestamp"
    target: str = "value"
    features: tuple = ()

    def needed(self):
        return [self.series, self.time, self.target, *self.features]

    def flag(self, name):
        """The CLI option that names column ``name`` (for messages)."""
        if name == self.series:
            return "--series-col"
        if name == self.time:
            return "--time-col"
        if name == self.target:
            return "--target-col"
        return "--features"


@dataclass(frozen=True)
class Dialect:
    """How text is written (the CLI's ``--csv-sep``, ``--decimal``, ``--time-format``):
    the CSV field separator (None: tab for .tsv, else comma), the decimal mark of
    numbers written as text, and a ``strptime`` format for text timestamps (None:
    ISO 8601 or numbers, guessed from the first value)."""

    sep: str | None = None
    decimal: str = "."
    time_format: str | None = None

    def delimiter(self, path):
        if self.sep is not None:
            return self.sep
        return "\t" if os.fspath(path).lower().endswith(".tsv") else ","


def is_dataset(path):
    """A directory or a glob pattern: read as a dataset of files (``io.datasets``)."""
    p = os.fspath(path)
    return os.path.isdir(p) or (any(c in p for c in "*?[") and not os.path.exists(p))


def detect_format(path):
    low = os.fspath(path).lower()
    if low.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if low.endswith(CSV_SUFFIXES):
        return "csv"
    return None


def open_source(src, columns=Columns(), fmt=None, dialect=Dialect()):
    """A ``Source`` for a path (``.parquet``/``.csv``; ``fmt`` overrides the
    suffix), a directory or glob of such files (a dataset, possibly
    hive-partitioned) or a ``pandas.DataFrame``."""
    if isinstance(src, pd.DataFrame):
        return FrameSource(src, columns)
    path = os.fspath(src)
    if is_dataset(path):
        from streamlstm.io.datasets import DatasetSource  # it builds on this module
        return DatasetSource(path, columns, fmt, dialect)
    fmt = fmt or detect_format(path)
    if fmt is None:
        raise DataError(f"{path}: cannot tell the format from the name; use a .parquet or .csv "
                        f"file name, or pass --format parquet|csv", origin=path)
    if fmt == "parquet":
        return ParquetSource(path, columns, dialect)
    if fmt == "csv":
        return CSVSource(path, columns, dialect=dialect)
    raise DataError(f"{path}: unknown format {fmt!r}; choose parquet or csv", origin=path)


def check_file(path):
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file; check the path", origin=path)
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory; pass a .parquet or .csv file", origin=path)
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: the file is empty (0 bytes); pass a file with a header and "
                        f"rows", origin=path)


def file_fingerprint(path):
    """Size plus CRCs of the first and last 64 KiB: cheap, and changes when the
    file is replaced or edited (a resumed run refuses a changed source)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(65536)
        f.seek(max(0, size - 65536))
        tail = f.read(65536)
    return {"size": size, "head_crc": zlib.crc32(head), "tail_crc": zlib.crc32(tail)}


# -- type checks and conversions (shared by every source) ---------------------------------
def _is_str(t):
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _decode(arr):
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    return arr


def check_schema(schema, cols, origin):
    names = schema.names
    for name in cols.needed():
        if name not in names:
            shown = ", ".join(repr(n) for n in names[:12]) + (", ..." if len(names) > 12 else "")
            raise DataError(f"{origin}: no column {name!r} (the file has {shown}); name the right "
                            f"column with {cols.flag(name)}", origin=origin, column=name)
    seen = set()
    for name in cols.needed():
        if name in seen:
            raise DataError(f"{origin}: column {name!r} is used twice ({cols.flag(name)}); each "
                            f"role needs its own column", origin=origin, column=name)
        seen.add(name)
    for name in cols.needed():
        t = schema.field(name).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if name == cols.series:
            ok = _is_str(t) or pa.types.is_integer(t)
            what = "series ids must be strings or integers"
        elif name == cols.time:
            ok = (pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_integer(t)
                  or pa.types.is_floating(t) or _is_str(t))
            what = "timestamps must be dates/times, ISO 8601 strings or numbers"
        else:
            ok = (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
                  or _is_str(t) or pa.types.is_null(t)
                  or (pa.types.is_boolean(t) and name != cols.target))
            what = ("the target must be numeric" if name == cols.target
                    else "features must be numeric (or boolean)")
        if not ok:
            raise DataError(f"{origin}: column {name!r} has type {t}; {what}: convert it, or name "
                            f"another column with {cols.flag(name)}", origin=origin, column=name,
                            value=str(t))


def _parse_numbers(arr, decimal="."):
    """Strings -> float64 with arrow's parser; on failure, pandas locates the values
    that are not numbers.  Returns (float64 ndarray with NaN for null, bad mask or None).
    ``decimal`` "," reads a decimal comma (``3,25``)."""
    arr = pc.utf8_trim_whitespace(arr)
    if decimal != ".":
        arr = pc.replace_substring(arr, decimal, ".")
    try:
        return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    raw = arr.to_numpy(zero_copy_only=False)
    s = pd.Series(raw, dtype=object)
    num = np.array(pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
    isnull = s.isna().to_numpy()
    nanword = s.str.lower().isin(_NAN_WORDS).to_numpy()
    bad = np.isnan(num) & ~isnull & ~nanword
    num[bad] = np.nan
    return num, bad


def _to_float(arr, decimal="."):
    """Any accepted numeric/string/bool/null column -> (float64 ndarray, bad mask or None)."""
    arr = _decode(arr)
    t = arr.type
    if _is_str(t):
        return _parse_numbers(arr, decimal)
    if pa.types.is_null(t):
        return np.full(len(arr), np.nan), None
    out = pc.cast(arr, pa.float64())
    if out.null_count:
        out = pc.fill_null(out, np.nan)
    return out.to_numpy(zero_copy_only=False), None


def _cast_or_locate(arr, typ):
    """``pc.cast`` strings to ``typ``; values that fail are found by bisection and
    become null.  Returns (array, bad mask or None)."""
    try:
        return pc.cast(arr, typ), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    bad = np.zeros(len(arr), dtype=bool)
    pieces = []

    def rec(lo, hi):
        try:
            pieces.append(pc.cast(arr.slice(lo, hi - lo), typ))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            if hi - lo == 1:
                bad[lo] = True
                pieces.append(pa.nulls(1, typ))
                return
            mid = (lo + hi) // 2
            rec(lo, mid)
            rec(mid, hi)

    rec(0, len(arr))
    return pa.concat_arrays(pieces), bad


_STRING_TIME_TYPES = (("int", pa.int64()), ("float", pa.float64()),
                      ("datetime", pa.timestamp("ns")), ("datetime", pa.timestamp("ns", tz="UTC")))


def _guess_string_time(arr):
    """The first of int, float, naive ISO datetime, zoned ISO datetime that parses
    the first non-null value."""
    valid = arr.drop_null()
    if len(valid) == 0:
        return None
    probe = valid.slice(0, 1)
    for kind, typ in _STRING_TIME_TYPES:
        try:
            pc.cast(probe, typ)
            return kind, typ
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return "unreadable", None


class Converter:
    """Turns raw record batches of one source into ``RowBatch`` es; remembers how
    a string time column is parsed so every batch of the source agrees."""

    def __init__(self, origin, cols, line_base=None, dialect=Dialect()):
        self.origin, self.cols, self.line_base = origin, cols, line_base
        self.dialect = dialect
        self.string_time = None  # (kind, arrow type) once decided
        if dialect.time_format is not None:
            self.string_time = ("format", None)

    def time(self, arr):
        """-> (key ndarray int64/float64, output array, kind, [problems])"""
        arr = raw = _decode(arr)
        t = arr.type
        name = self.cols.time
        bad = None
        if _is_str(t):
            arr = pc.utf8_trim_whitespace(arr)
            if self.string_time is None:
                guess = _guess_string_time(arr)
                if guess is not None:
                    if guess[0] == "unreadable":
                        first = arr.drop_null()[0].as_py()
                        r = int(np.flatnonzero(~np.asarray(arr.is_null()))[0])
                        raise DataError(
                            f"{self.origin}, row {r}: column {name!r} value {first!r} is not a "
                            f"timestamp; write ISO 8601 dates (2024-01-31 13:00:00) or numbers, "
                            f"or name the time column with --time-col", origin=self.origin,
                            column=name, value=first)
                    self.string_time = guess
            if self.string_time is None:  # an all-null batch before any value
                kind, typ = "int", pa.int64()
            else:
                kind, typ = self.string_time
            if kind == "format":  # --time-format: strptime, a value that does not fit is bad
                parsed = pc.strptime(arr, format=self.dialect.time_format, unit="ns",
                                     error_is_null=True)
                bad = np.asarray(parsed.is_null()) & ~np.asarray(arr.is_null())
                arr = parsed
            else:
                arr, bad = _cast_or_locate(arr, typ)
            t = arr.type
        if pa.types.is_timestamp(t) or pa.types.is_date(t):
            kind = "datetime"
            ts = pc.cast(arr, pa.timestamp("ns", tz=getattr(t, "tz", None)))
            key = pc.cast(ts, pa.int64())
        elif pa.types.is_integer(t):
            kind = "int"
            key = pc.cast(arr, pa.int64())
        else:
            kind = "float"
            key = pc.cast(arr, pa.float64())
        nulls = np.asarray(arr.is_null())
        key = pc.fill_null(key, 0).to_numpy(zero_copy_only=False)
        problems = []
        if bad is not None and bad.any():
            problems.append(Problem(bad, name, BAD_TIME, lambda r, raw=raw: raw[int(r)].as_py()))
            nulls = nulls & ~bad
        if nulls.any():
            problems.append(Problem(nulls, name, MISSING_TIME, lambda r: None))
        return key, arr, kind, problems

    def convert(self, rb, row0, local0=None):
        """``row0``: the source position of the first row; ``local0``: its row in
        its file, for messages (default ``row0``: a single file)."""
        cols = self.cols
        dec = self.dialect.decimal
        R = rb.num_rows
        problems = []
        # Series ids: the model gets str/int values; the output keeps the arrow array.
        ids_arr = _decode(rb.column(cols.series))
        if ids_arr.null_count:
            ids = ids_arr.to_numpy(zero_copy_only=False).astype(object)
            nulls = np.asarray(ids_arr.is_null())
            ids[nulls] = None
            problems.append(Problem(nulls, cols.series, MISSING_ID, lambda r: None))
        else:
            ids = ids_arr.to_numpy(zero_copy_only=False)
        key, t_out, kind, tp = self.time(rb.column(cols.time))
        problems += tp
        y, bad = _to_float(rb.column(cols.target), dec)
        if bad is not None and bad.any():
            raw = _decode(rb.column(cols.target))
            problems.append(Problem(bad, cols.target, NOT_A_NUMBER,
                                    lambda r, raw=raw: raw[int(r)].as_py()))
        X = None
        if cols.features:
            X = np.empty((R, len(cols.features)))
            for j, name in enumerate(cols.features):
                X[:, j], bad = _to_float(rb.column(name), dec)
                if bad is not None and bad.any():
                    raw = _decode(rb.column(name))
                    problems.append(Problem(bad, name, NOT_A_NUMBER,
                                            lambda r, raw=raw: raw[int(r)].as_py()))
        first = row0 if local0 is None else local0
        return RowBatch(ids=ids, time=key, y=y, X=X, rows=np.arange(first, first + R, dtype=np.int64),
                        origin=self.origin, time_kind=kind, target_name=cols.target,
                        time_name=cols.time, feature_names=tuple(cols.features),
                        problems=problems, position=row0 + R, line_base=self.line_base,
                        columns={"series": ids_arr, "time": t_out})


def split_batch(rb, batch_rows):
    if rb.num_rows <= batch_rows:
        yield rb
        return
    for off in range(0, rb.num_rows, batch_rows):
        yield rb.slice(off, batch_rows)


class Source:
    """Base class: ``name``, ``columns``, ``total_rows`` (None if unknown before
    reading), ``fingerprint()`` and ``batches(start, batch_rows)``."""

    format = None
    line_base = None

    def __init__(self, name, columns, dialect=Dialect()):
        self.name, self.columns, self.dialect = name, columns, dialect
        self.total_rows = None

    def fingerprint(self):
        return {"format": self.format}

    def _raw(self, start, batch_rows):  # -> iterator of (row0, RecordBatch)
        raise NotImplementedError

    def batches(self, start=0, batch_rows=DEFAULT_BATCH_ROWS):
        """``RowBatch`` es of at most ``batch_rows`` rows, from row ``start`` on."""
        conv = Converter(self.name, self.columns, self.line_base, self.dialect)
        for row0, rb in self._raw(int(start), int(batch_rows)):
            for piece in split_batch(rb, batch_rows):
                yield conv.convert(piece, row0)
                row0 += piece.num_rows


class ParquetSource(Source):
    """A Parquet file, streamed record batch by record batch (needed columns only)."""

    format = "parquet"

    def __init__(self, path, columns=Columns(), dialect=Dialect()):
        super().__init__(os.fspath(path), columns, dialect)
        check_file(self.name)
        try:
            self._pf = pq.ParquetFile(self.name)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{self.name}: not a readable Parquet file ({short_error(exc)}); check that "
                            f"it is Parquet and complete (re-export or re-copy it); a CSV file "
                            f"must end in .csv", origin=self.name) from None
        check_schema(self._pf.schema_arrow, columns, self.name)
        md = self._pf.metadata
        self.total_rows = md.num_rows
        self._starts = np.concatenate([[0], np.cumsum([md.row_group(i).num_rows
                                                       for i in range(md.num_row_groups)])])
        if self.total_rows == 0:
            raise DataError(f"{self.name}: the file has no rows; nothing to forecast",
                            origin=self.name)

    def fingerprint(self):
        return {"format": self.format, "rows": int(self.total_rows), **file_fingerprint(self.name)}

    def _raw(self, start, batch_rows):
        # Row group by row group: memory is bounded by one row group, a resumed run
        # jumps straight to the group holding its row, and a corrupt page is
        # reported with the rows it holds.
        starts = self._starts
        g0 = int(np.searchsorted(starts, start, side="right") - 1)
        for g in range(g0, len(starts) - 1):
            row = int(starts[g])
            skip = max(0, start - row)
            it = self._pf.iter_batches(batch_size=batch_rows, row_groups=[g],
                                       columns=self.columns.needed(), use_threads=True)
            while True:
                try:
                    rb = next(it)
                except StopIteration:
                    break
                except (pa.ArrowException, OSError) as exc:
                    raise DataError(
                        f"{self.name}: corrupt data in row group {g} (rows {int(starts[g])} to "
                        f"{int(starts[g + 1]) - 1}): {short_error(exc)}; re-export or re-copy the file",
                        origin=self.name, row=int(starts[g])) from None
                if skip:
                    cut = min(skip, rb.num_rows)
                    rb = rb.slice(cut)
                    skip -= cut
                    row += cut
                    if rb.num_rows == 0:
                        continue
                yield row, rb
                row += rb.num_rows


class CSVSource(Source):
    """A CSV file (optionally compressed), read with pyarrow's streaming reader.
    Numeric and time columns are read as text and parsed per batch, so a bad
    value is reported with its row (``line`` = row + 2, the header being line 1)."""

    format = "csv"
    line_base = 2

    def __init__(self, path, columns=Columns(), block_size=1 << 20, dialect=Dialect()):
        super().__init__(os.fspath(path), columns, dialect)
        check_file(self.name)
        self._block_size = block_size
        try:
            with self._open(header_only=True) as reader:
                schema = reader.schema
            names = schema.names           # pyarrow decodes the header's names here
        except UnicodeDecodeError as exc:
            raise DataError(f"{self.name}: the header line is not UTF-8 text (byte "
                            f"{exc.object[exc.start:exc.start + 1]!r} at offset {exc.start} of "
                            f"a column name); save the file as UTF-8", origin=self.name) from None
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{self.name}: not a readable CSV file ({short_error(exc)}); check the "
                            f"file (a header line, then one row per line)", origin=self.name) from None
        # Read every needed column as text: parsing is ours, per batch, with rows named.
        text = pa.schema([(n, pa.string()) for n in names])
        check_schema(text, columns, self.name)

    def _open(self, header_only=False):
        read = pcsv.ReadOptions(block_size=self._block_size)
        if header_only:
            conv = pcsv.ConvertOptions()
        else:
            conv = pcsv.ConvertOptions(
                include_columns=self.columns.needed(),
                column_types={n: pa.string() for n in self.columns.needed()},
                strings_can_be_null=True)
        stream = pa.input_stream(self.name, compression="detect")
        parse = pcsv.ParseOptions(delimiter=self.dialect.delimiter(self.name))
        return pcsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=conv)

    def fingerprint(self):
        return {"format": self.format, **file_fingerprint(self.name)}

    def _raw(self, start, batch_rows):
        row = 0
        try:
            reader = self._open()
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{self.name}: not a readable CSV file ({short_error(exc)})",
                            origin=self.name) from None
        any_rows = False
        with reader:
            while True:
                try:
                    rb = reader.read_next_batch()
                except StopIteration:
                    break
                except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
                    raise DataError(f"{self.name}: unreadable CSV after row {row - 1} (line "
                                    f"{row + 1}): {short_error(exc)}; fix the file there",
                                    origin=self.name, row=row) from None
                if rb.num_rows == 0:
                    continue
                any_rows = True
                if row + rb.num_rows <= start:
                    row += rb.num_rows
                    continue
                if row < start:
                    rb = rb.slice(start - row)
                    row = start
                yield row, rb
                row += rb.num_rows
        if not any_rows:
            raise DataError(f"{self.name}: the file has a header but no rows; nothing to forecast",
                            origin=self.name)


class FrameSource(Source):
    """A pandas DataFrame, converted to Arrow once and served in record batches."""

    format = "frame"

    def __init__(self, df, columns=Columns(), name="<DataFrame>"):
        super().__init__(name, columns)
        missing = [c for c in columns.needed() if c not in df.columns]
        if missing:
            check_schema(pa.schema([(str(c), pa.string()) for c in df.columns]), columns, name)
        try:
            self._table = pa.Table.from_pandas(df[columns.needed()], preserve_index=False)
        except (pa.ArrowException, TypeError) as exc:
            raise DataError(f"{name}: a column cannot be converted ({short_error(exc)}); give each "
                            f"column one type", origin=name) from None
        check_schema(self._table.schema, columns, name)
        self.total_rows = self._table.num_rows
        if self.total_rows == 0:
            raise DataError(f"{name}: the frame has no rows; nothing to forecast", origin=name)

    def fingerprint(self):
        return {"format": self.format, "rows": int(self.total_rows)}

    def _raw(self, start, batch_rows):
        row = start
        for rb in self._table.slice(start).to_batches(max_chunksize=batch_rows):
            if rb.num_rows:
                yield row, rb
                row += rb.num_rows


def short_error(exc):
    msg = str(exc).strip().splitlines()
    return msg[0] if msg else type(exc).__name__
