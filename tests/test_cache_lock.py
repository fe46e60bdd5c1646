"""Two processes saving two signatures of one function to Numba's cache at the
same moment (a first run compiles in two processes: forecast/warm.py) keep both,
each bound to its own code (streamlstm/backends/cache_lock.py).

Unlocked, Numba gives both signatures data file 1: the index written last maps
its key to 1 while file 1 holds the code written last, so a later process can
load the int64 code for a float64 call.  The writers here stretch the window
(a second's pause after each index read) and start at the same instant.
"""
import json
import os
import subprocess
import sys
import time

PROBE = '''\
from numba import njit


@njit(cache=True)
def twice(x):
    return x + x
'''

WRITER = '''\
import sys, time
import streamlstm.backends.cache_lock             # what is under test
from numba.core.caching import IndexDataCacheFile

load_index = IndexDataCacheFile._load_index
def slow_load_index(self):                       # the race's window, a second wide
    out = load_index(self)
    time.sleep(1.0)
    return out
IndexDataCacheFile._load_index = slow_load_index

import probe
start_at = float(sys.argv[2])
while time.time() < start_at:
    time.sleep(0.005)
probe.twice(1.5 if sys.argv[1] == "float" else 3)
'''

READER = '''\
import json
import streamlstm.backends.cache_lock
import probe
out = {"float": probe.twice(1.5), "int": probe.twice(3),
       "hits": sum(probe.twice.stats.cache_hits.values())}
print(json.dumps(out))
'''


def test_concurrent_saves_keep_each_signature_with_its_own_code(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "writer.py").write_text(WRITER)
    (tmp_path / "reader.py").write_text(READER)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(tmp_path))
    env.pop("NUMBA_DISABLE_JIT", None)
    start_at = str(time.time() + 4.0)           # after both have imported Numba
    writers = [subprocess.Popen([sys.executable, "writer.py", kind, start_at], cwd=tmp_path,
                                env=env, stderr=subprocess.PIPE, text=True)
               for kind in ("int", "float")]
    for w in writers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err[-2000:]
    p = subprocess.run([sys.executable, "reader.py"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out == {"float": 3.0, "int": 6, "hits": 2}
    assert len(list((tmp_path / "cache").rglob("*.nbc"))) == 2     # one data file each
