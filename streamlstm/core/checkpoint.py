"""Checkpoint files: one self-describing binary file, written atomically.

Format (all integers little-endian)::

    8 bytes   magic  b"STRMLSTM"
    4 bytes   format version (uint32)
    8 bytes   header length n (uint64)
    n bytes   header: UTF-8 JSON {"kind", "meta", "arrays": [{name, dtype, shape,
              offset, nbytes, crc32}], "payload_bytes"}
    4 bytes   CRC32 of the header bytes
    payload   the arrays' raw C-order bytes, back to back
    8 bytes   b"STRMEND!" trailer (a torn write never ends with it)

Every array carries its own CRC32, so a flipped bit names the array it hit.
Writes go to a temporary file in the same directory, are fsync'ed, then renamed
over the target (and the directory fsync'ed): a reader sees the old file or the
new one, never half of one - also after ``kill -9`` or a power cut.
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib

import numpy as np

from streamlstm.errors import CheckpointError

MAGIC = b"STRMLSTM"
TRAILER = b"STRMEND!"
FORMAT_VERSION = 1
_ALLOWED_DTYPES = {"float32", "float64", "int64", "int32", "uint8", "bool"}


def write(path, kind: str, meta: dict, arrays: dict) -> None:
    """Atomically write ``arrays`` (name -> ndarray) and JSON-able ``meta``."""
    path = os.fspath(path)
    entries, blobs, offset = [], [], 0
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        if a.dtype.name not in _ALLOWED_DTYPES:
            raise TypeError(f"checkpoint array {name!r} has unsupported dtype {a.dtype}")
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        entries.append({"name": name, "dtype": a.dtype.name, "shape": list(a.shape),
                        "offset": offset, "nbytes": len(b), "crc32": zlib.crc32(b)})
        blobs.append(b)
        offset += len(b)
    header = json.dumps({"kind": kind, "meta": meta, "arrays": entries,
                         "payload_bytes": offset}, sort_keys=True).encode()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = temp_file(directory, ".ckpt")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC)
            f.write(struct.pack("<IQ", FORMAT_VERSION, len(header)))
            f.write(header)
            f.write(struct.pack("<I", zlib.crc32(header)))
            for b in blobs:
                f.write(b)
            f.write(TRAILER)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def temp_file(directory, suffix):
    """``(fd, path)`` of a new ``.tmp-*suffix`` file in ``directory`` that will be
    renamed over a final file: created with the mode the user's umask gives new
    files (``mkstemp`` alone makes it 0600, which the rename would keep)."""
    fd, path = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.fchmod(fd, 0o666 & ~mask)
    except OSError:      # a file system without permissions: keep what it gives
        pass
    return fd, path


def fsync_dir(directory):
    """Make a rename into ``directory`` durable (where the OS allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def read(path, kind: str | None = None):
    """Read a checkpoint; returns ``(meta, arrays)``.  Refuses - with a message that
    says which and what to do - a missing, foreign, truncated, corrupt or
    newer-version file, or one of another ``kind``."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file") from None
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise CheckpointError(f"{path}: not a streamlstm checkpoint (it starts with "
                              f"{data[:8]!r}, expected {MAGIC!r}); pass a file written by "
                              f"OnlineRNN.save or `streamlstm run --checkpoint`")
    pos = len(MAGIC)
    if len(data) < pos + 12:
        raise CheckpointError(f"{path}: truncated checkpoint ({len(data)} bytes); it was cut "
                              f"off while being copied: restore it from its source")
    version, hlen = struct.unpack_from("<IQ", data, pos)
    pos += 12
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version}, this streamlstm "
                              f"reads version {FORMAT_VERSION}; upgrade streamlstm to read it")
    if len(data) < pos + hlen + 4:
        raise CheckpointError(f"{path}: truncated checkpoint (header needs {hlen} bytes, file "
                              f"has {len(data)}); restore it from its source")
    header = data[pos:pos + hlen]
    pos += hlen
    (hcrc,) = struct.unpack_from("<I", data, pos)
    pos += 4
    if zlib.crc32(header) != hcrc:
        raise CheckpointError(f"{path}: corrupt checkpoint (header checksum mismatch); "
                              f"restore it from a backup or start afresh")
    try:
        h = json.loads(header)
    except ValueError:
        raise CheckpointError(f"{path}: corrupt checkpoint (unreadable header)") from None
    if kind is not None and h.get("kind") != kind:
        raise CheckpointError(f"{path}: this checkpoint holds a {h.get('kind')!r}, not a "
                              f"{kind!r}; pass the matching file")
    expected = pos + h["payload_bytes"] + len(TRAILER)
    if len(data) != expected or data[-len(TRAILER):] != TRAILER:
        raise CheckpointError(f"{path}: truncated or padded checkpoint ({len(data)} bytes, "
                              f"expected {expected}); restore it from its source")
    arrays = {}
    for e in h["arrays"]:
        if e["dtype"] not in _ALLOWED_DTYPES:
            raise CheckpointError(f"{path}: array {e['name']!r} has unknown dtype {e['dtype']!r}")
        b = data[pos + e["offset"]:pos + e["offset"] + e["nbytes"]]
        if zlib.crc32(b) != e["crc32"]:
            raise CheckpointError(f"{path}: corrupt checkpoint: array {e['name']!r} fails its "
                                  f"checksum; restore it from a backup or start afresh")
        dt = np.dtype(e["dtype"]).newbyteorder("<")
        arrays[e["name"]] = np.frombuffer(b, dtype=dt).reshape(e["shape"]).astype(
            dt.newbyteorder("="), copy=True)
    return h["meta"], arrays
