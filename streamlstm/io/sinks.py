"""Where forecasts go: a Parquet or CSV (or gzip CSV) file written atomically, and the
checkpointed "parts" a resumable run writes until it is complete.

``ForecastFile`` writes to a temporary file next to the target and renames it
into place on ``close`` - a reader never sees half a file.  Rows are regrouped
into Parquet row groups of exactly ``row_group_rows`` rows whatever sizes the
tables arrive in, so the same rows always give the same bytes (an interrupted
and resumed run writes the very file an uninterrupted one does).

``PartStore`` is the output of a run with ``--checkpoint``: a directory of
Parquet parts ``part-000000.parquet, ...``.  A part is written under a temporary
name and renamed when the checkpoint that counts it is about to be written;
after a crash, ``reset_to(n)`` deletes every part the checkpoint does not count
(rows written after the last checkpoint), so no row is ever lost or written
twice.  ``finish`` streams the committed parts into the final ``ForecastFile``.
"""
from __future__ import annotations

import glob
import json
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from streamlstm.core.checkpoint import fsync_dir, temp_file
from streamlstm.stream.policy import DataError

ROW_GROUP_ROWS = 65536


def out_format(path):
    low = os.fspath(path).lower()
    if path == "-" or low.endswith((".csv", ".csv.gz")):
        return "csv"
    if low.endswith((".parquet", ".pq", ".parq")):
        return "parquet"
    if low.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return None


class _JsonLines:
    """A JSON Lines writer with the CSV writer's interface (``write_table``,
    ``close``): one object per row, keys the column names, ``null`` for a
    missing number, timestamps as the ISO text of ``csv_ready``."""

    def __init__(self, sink):
        self._own = isinstance(sink, str)
        self._f = open(sink, "wb") if self._own else sink

    def write_table(self, table):
        lines = [json.dumps(row, allow_nan=False) for row in table.to_pylist()]
        if lines:
            self._f.write(("\n".join(lines) + "\n").encode())

    def close(self):
        if self._own:
            self._f.close()
        else:
            self._f.flush()


def csv_ready(table):
    """The table as CSV readers expect it: timestamps as ISO 8601 text, the
    fraction of a second only where there is one, at the column's precision
    (``2024-01-01T10:00:00``, ``2024-01-01T10:00:00.250`` in milliseconds); a
    missing number (NaN) as an empty cell."""
    cols = []
    for col, field in zip(table.columns, table.schema):
        if pa.types.is_timestamp(field.type):
            fmt = "%Y-%m-%dT%H:%M:%S" + ("%z" if field.type.tz else "")
            # A whole second needs no fraction (Parquet has no seconds unit, so
            # most files are in ms or ns): drop an all-zero one, value by value.
            col = pc.replace_substring_regex(pc.strftime(col, format=fmt),
                                             pattern=r"\.0+($|[+-])", replacement=r"\1")
        elif pa.types.is_floating(field.type):
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, field.type), col)
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def _discard(writer, tmp):
    """Abandon an open output: close ``writer`` (whatever state it is in) and
    delete the temporary file ``tmp``; the committed output is untouched."""
    if writer is not None:
        try:
            writer.close()
        except Exception:
            pass
    if tmp and os.path.exists(tmp):
        os.unlink(tmp)


class _Rebatcher:
    """Collects tables and hands out slices of exactly ``n`` rows."""

    def __init__(self, n):
        self.n, self.pending, self.rows = n, [], 0

    def add(self, table):
        if table.num_rows:
            self.pending.append(table)
            self.rows += table.num_rows
        while self.rows >= self.n:
            t = pa.concat_tables(self.pending).combine_chunks()
            yield t.slice(0, self.n)
            rest = t.slice(self.n)
            self.pending, self.rows = ([rest] if rest.num_rows else []), rest.num_rows

    def rest(self):
        if self.rows:
            yield pa.concat_tables(self.pending).combine_chunks()
        self.pending, self.rows = [], 0


class ForecastFile:
    """A forecast table written to ``path`` (``.parquet``, ``.csv``, ``.csv.gz`` or
    ``.jsonl``; ``"-"`` is CSV on stdout), atomically."""

    def __init__(self, path, row_group_rows=ROW_GROUP_ROWS, fmt=None):
        self.path = os.fspath(path)
        self.fmt = fmt or out_format(self.path)
        if self.fmt is None:
            raise DataError(f"{self.path}: cannot tell the output format; name it .parquet, "
                            f".csv, .csv.gz or .jsonl", origin=self.path)
        self.schema = None
        self.rows = 0
        self._writer = None
        self._stream = None     # the gzip stream under the CSV writer (.csv.gz)
        self._tmp = None
        self._batches = _Rebatcher(row_group_rows)

    def _open(self, schema):
        self.schema = schema
        if self.path == "-":
            self._sink = sys.stdout.buffer
        else:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            # A run killed while writing this file left its temp file: remove it.
            for stale in glob.glob(os.path.join(directory, ".tmp-*" + os.path.basename(self.path))):
                os.unlink(stale)
            fd, self._tmp = temp_file(directory, os.path.basename(self.path))
            os.close(fd)
            self._sink = self._tmp
        if self.fmt == "parquet":
            self._writer = pq.ParquetWriter(self._sink, schema)
        elif self.fmt == "jsonl":
            self._writer = _JsonLines(self._sink)
        elif self.path.lower().endswith(".gz"):   # --out f.csv.gz: gzip-compressed CSV
            self._stream = pa.CompressedOutputStream(self._sink, "gzip")
            self._writer = pcsv.CSVWriter(self._stream, schema)
        else:
            self._writer = pcsv.CSVWriter(self._sink, schema)

    def write(self, table):
        if self.fmt != "parquet":
            table = csv_ready(table)
        if self._writer is None:
            self._open(table.schema)
        elif table.schema != self.schema:
            try:
                table = table.cast(self.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                raise DataError(f"{self.path}: these rows' columns ({table.schema.types}) do not "
                                f"match earlier rows' ({self.schema.types}): {exc}; give the "
                                f"history and live files the same column types",
                                origin=self.path) from None
        if self.path == "-":   # a pipe: rows go downstream as they are forecast
            self._write(table)
            sys.stdout.buffer.flush()
            return
        for t in self._batches.add(table):
            self._write(t)

    def _write(self, t):
        if self.fmt == "parquet":
            self._writer.write_table(t, row_group_size=t.num_rows)
        else:
            self._writer.write_table(t)
        self.rows += t.num_rows

    def close(self, schema=None):
        """Flush, fsync and rename into place.  ``schema`` writes an empty table
        with these columns when no row came."""
        if self._writer is None:
            if schema is None:
                return
            self._open(schema if self.fmt == "parquet" else csv_ready(schema.empty_table()).schema)
        for t in self._batches.rest():
            self._write(t)
        self._writer.close()
        self._writer = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._tmp is not None:
            with open(self._tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(self._tmp, self.path)
            fsync_dir(os.path.dirname(os.path.abspath(self.path)))
            self._tmp = None
        elif self.path == "-":
            sys.stdout.flush()

    def abort(self):
        if self._stream is not None:
            _discard(self._writer, None)
            self._writer, self._stream = self._stream, None   # closed next, then deleted
        _discard(self._writer, self._tmp)
        self._writer = self._tmp = None


class PartStore:
    """Checkpointed output parts in ``directory`` (see the module docstring)."""

    def __init__(self, directory):
        self.dir = os.fspath(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.committed = 0
        self._writer = None
        self._tmp = None
        self.schema = None

    def _name(self, k):
        return os.path.join(self.dir, f"part-{k:06d}.parquet")

    def reset_to(self, committed):
        """Keep parts ``0 .. committed-1``; delete later parts and stray temp files."""
        for p in glob.glob(os.path.join(self.dir, "part-*.parquet")):
            k = int(os.path.basename(p)[5:11])
            if k >= committed:
                os.unlink(p)
        for p in glob.glob(os.path.join(self.dir, ".tmp-*")):
            os.unlink(p)
        missing = [k for k in range(committed) if not os.path.exists(self._name(k))]
        if missing:
            raise DataError(f"{self.dir}: output part {self._name(missing[0])} is missing but the "
                            f"checkpoint counts it; the checkpoint directory was edited - remove "
                            f"it to start over", origin=self.dir)
        self.committed = committed
        if committed and self.schema is None:
            self.schema = pq.read_schema(self._name(0))

    def write(self, table):
        if self._writer is None:
            if self.schema is not None and table.schema != self.schema:
                table = table.cast(self.schema)
            self.schema = table.schema
            fd, self._tmp = temp_file(self.dir, ".parquet")
            os.close(fd)
            self._writer = pq.ParquetWriter(self._tmp, self.schema)
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        self._writer.write_table(table)

    def commit(self):
        """Close the open part and give it its final name; returns the number of
        committed parts (to be stored in the checkpoint written next)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            with open(self._tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(self._tmp, self._name(self.committed))
            fsync_dir(self.dir)
            self._tmp = None
            self.committed += 1
        return self.committed

    def paths(self):
        return [self._name(k) for k in range(self.committed)]

    def iter_batches(self, columns=None):
        for p in self.paths():
            yield from pq.ParquetFile(p).iter_batches(columns=columns)

    def finish(self, out, on_batch=None):
        """Stream the committed parts into ``out`` (a ``ForecastFile``)."""
        for rb in self.iter_batches():
            out.write(pa.Table.from_batches([rb]))
            if on_batch is not None:
                on_batch()
        out.close(schema=self.schema)

    def remove(self):
        self.abort()
        for p in self.paths():
            if os.path.exists(p):
                os.unlink(p)
        self.committed = 0

    def abort(self):
        _discard(self._writer, self._tmp)
        self._writer = self._tmp = None
