"""A dataset of files as one source: a directory (hive-partitioned or not) or a
glob of Parquet or CSV files, read with pyarrow's dataset API.

Data lakes hold directories of part files (``date=2024-01-01/part-0.parquet``);
``streamlstm run --source lake/`` or ``--source 'lake/*/*.parquet'`` reads them
as one stream.  The order is deterministic - files by sorted path, rows in file
order - so a rerun sees the same stream.  Hive partition keys become columns
(``--series-col date`` works); only the needed columns are read (projection).

The source position is a global row number across the files, in that order, so
resume works as with one file; a resumed run refuses a dataset whose file list,
sizes or contents (``file_fingerprint`` of every file) changed.  Messages name
the file and the row within it (``lake/date=.../part-0.parquet, row 17``).
"""
from __future__ import annotations

import glob
import os

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.dataset as ds

from streamlstm.io.files import (DEFAULT_BATCH_ROWS, Columns, Converter, Dialect, Source,
                                 check_schema, detect_format, file_fingerprint, short_error,
                                 split_batch)
from streamlstm.stream.policy import DataError


def discover(spec):
    """``(sorted file paths, base directory)`` of a directory (recursively; names
    starting with ``.`` or ``_`` skipped, as pyarrow and Spark do) or a glob."""
    if os.path.isdir(spec):
        base = spec
        found = []
        for root, dirs, names in os.walk(spec):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
            found += [os.path.join(root, n) for n in names if not n.startswith((".", "_"))]
        found = [p for p in found if detect_format(p) is not None]
    else:
        found = [p for p in glob.glob(spec, recursive=True) if os.path.isfile(p)]
        # The partition base: the directory part before the first wildcard.
        head = spec[:min(spec.index(c) for c in "*?[" if c in spec)]
        base = os.path.dirname(head) or "."
    return sorted(found), base


class DatasetSource(Source):
    """Parquet or CSV files read as one source (see the module docstring)."""

    def __init__(self, spec, columns=Columns(), fmt=None, dialect=Dialect()):
        super().__init__(os.fspath(spec), columns, dialect)
        self.files, self.base = discover(self.name)
        if not self.files:
            raise DataError(f"{self.name}: no .parquet or .csv files found there; check the "
                            f"path or pattern", origin=self.name)
        fmts = {fmt or detect_format(p) for p in self.files}
        if len(fmts) != 1 or None in fmts:
            kinds = ", ".join(sorted(map(str, fmts)))
            raise DataError(f"{self.name}: the files mix formats ({kinds}); a dataset is all "
                            f"Parquet or all CSV (or pass --format)",
                            origin=self.name)
        self.file_format = fmts.pop()
        self.format = f"{self.file_format}-dataset"
        self.line_base = 2 if self.file_format == "csv" else None
        try:
            self._ds = ds.dataset(self.files, format=self._arrow_format(),
                                  partitioning="hive", partition_base_dir=self.base)
            schema = self._ds.schema
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{self.name}: not a readable {self.file_format} dataset "
                            f"({short_error(exc)})", origin=self.name) from None
        check_schema(schema, columns, self.name)
        self._frags = sorted(self._ds.get_fragments(), key=lambda f: f.path)
        self._rows = None
        if self.file_format == "parquet":
            self._rows = [self._parquet_rows(f) for f in self._frags]
            self.total_rows = sum(self._rows)
            if self.total_rows == 0:
                raise DataError(f"{self.name}: the files have no rows; nothing to forecast",
                                origin=self.name)

    def _arrow_format(self):
        if self.file_format == "parquet":
            return ds.ParquetFileFormat()
        # Needed columns as text: parsing is ours, per batch, with rows named (as CSVSource).
        conv = pcsv.ConvertOptions(column_types={n: pa.string() for n in self.columns.needed()},
                                   strings_can_be_null=True)
        parse = pcsv.ParseOptions(delimiter=self.dialect.delimiter(self.files[0]))
        return ds.CsvFileFormat(parse_options=parse, convert_options=conv,
                                read_options=pcsv.ReadOptions(block_size=1 << 20))

    def _parquet_rows(self, frag):
        try:
            frag.ensure_complete_metadata()
            return sum(rg.num_rows for rg in frag.row_groups)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{frag.path}: not a readable Parquet file ({short_error(exc)}); "
                            f"re-export or re-copy it", origin=frag.path) from None

    def fingerprint(self):
        files = [{"path": os.path.relpath(p, self.base), **file_fingerprint(p)}
                 for p in self.files]
        fp = {"format": self.format, "size": sum(f["size"] for f in files), "files": files}
        if self.total_rows is not None:
            fp["rows"] = int(self.total_rows)
        return fp

    def batches(self, start=0, batch_rows=DEFAULT_BATCH_ROWS):
        conv = Converter(self.name, self.columns, self.line_base, self.dialect)
        for path, row0, local0, rb in self._raw(int(start), int(batch_rows)):
            conv.origin = path           # messages name the file ...
            for piece in split_batch(rb, batch_rows):
                yield conv.convert(piece, row0, local0)   # ... and the row within it
                row0 += piece.num_rows
                local0 += piece.num_rows

    def _raw(self, start, batch_rows):
        """``(file, global row, row in file, RecordBatch)`` from global row ``start`` on."""
        row = 0
        for k, frag in enumerate(self._frags):
            if self._rows is not None and row + self._rows[k] <= start:
                row += self._rows[k]       # Parquet: skip whole files by their metadata
                continue
            n = 0
            for local, rb in self._fragment_batches(frag, max(0, start - row), batch_rows):
                n = local + rb.num_rows
                skip = max(0, start - row - local)
                if skip < rb.num_rows:
                    yield frag.path, row + local + skip, local + skip, rb.slice(skip)
            row += self._rows[k] if self._rows is not None else n

    def _fragment_batches(self, frag, skip, batch_rows):
        """``(row in file, RecordBatch)`` of one file; Parquet starts at the row
        group holding row ``skip``, CSV reads from the top."""
        local = 0
        if self.file_format == "parquet" and skip:
            sizes = [rg.num_rows for rg in frag.row_groups]
            g = 0
            while g < len(sizes) and local + sizes[g] <= skip:
                local += sizes[g]
                g += 1
            frag = frag.subset(row_group_ids=list(range(g, len(sizes))))
        it = frag.to_batches(schema=self._ds.schema, columns=self.columns.needed(),
                             batch_size=batch_rows)
        while True:
            try:
                rb = next(it)
            except StopIteration:
                return
            except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
                raise DataError(f"{frag.path}: unreadable {self.file_format} data after row "
                                f"{local} ({short_error(exc)}); fix or re-copy the file",
                                origin=frag.path, row=local) from None
            if rb.num_rows:
                yield local, rb
                local += rb.num_rows
