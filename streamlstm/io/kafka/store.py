"""Per-partition snapshots (``--checkpoint DIR`` of a Kafka run): one file per
source partition, ``DIR/<topic>/partition-<p>.ckpt``, holding the partition's
runner *and* the offset of the next message to read, written together
atomically (``checkpoint.write``: temp file, fsync, rename)."""
from __future__ import annotations

import os
import re

from streamlstm.errors import CheckpointError

SNAPSHOT_SUFFIX = ".ckpt"


class PartitionStore:
    """One snapshot file per source partition: ``DIR/<topic>/partition-00003.ckpt``.

    The directory may be shared storage (NFS and the like): every write is one
    atomic rename of a complete file holding a state *and* the offset it has
    reached, so any snapshot a worker loads is consistent.  The partition's owner
    writes it (on revocation before the group hands the partition on); a worker
    whose session expired unnoticed (a long stall) may still overwrite a newer
    snapshot with an older one - which costs its next owner a longer replay,
    never a row counted twice or lost.  (With ``--exactly-once`` such a worker is
    fenced at its next transaction and stops before it snapshots.)"""

    def __init__(self, directory):
        self.directory = os.fspath(directory)

    def path(self, topic: str, partition: int) -> str:
        return os.path.join(self.directory, topic, f"partition-{partition:05d}{SNAPSHOT_SUFFIX}")

    def pattern(self, topic: str) -> str:
        """The path of every snapshot of ``topic``: ``DIR/<topic>/partition-*.ckpt``."""
        return self.path(topic, 0).replace("partition-00000", "partition-*")

    def exists(self, topic, partition) -> bool:
        return os.path.exists(self.path(topic, partition))

    def partitions(self, topic) -> list[int]:
        d = os.path.join(self.directory, topic)
        if not os.path.isdir(d):
            return []
        out = []
        for name in os.listdir(d):
            m = re.fullmatch(r"partition-(\d+)" + re.escape(SNAPSHOT_SUFFIX), name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def save(self, runner, topic, partition, offset, meta):
        runner.snapshot(self.path(topic, partition),
                        position={"topic": topic, "partition": int(partition), "offset": int(offset)},
                        meta=meta)

    def load(self, topic, partition, backend=None):
        """``(runner, next_offset, meta)`` or ``None`` when there is no snapshot."""
        from streamlstm.stream.runner import StreamRunner
        path = self.path(topic, partition)
        if not os.path.exists(path):
            return None
        runner, pos, meta = StreamRunner.restore(path, backend=backend)
        if not isinstance(pos, dict) or pos.get("topic") != topic or pos.get("partition") != partition:
            raise CheckpointError(f"{path}: this snapshot belongs to {pos!r}, not to topic "
                                  f"{topic!r} partition {partition}; it was moved or copied by hand")
        return runner, int(pos["offset"]), meta
