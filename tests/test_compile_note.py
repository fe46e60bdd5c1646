"""The one line on stderr while the package's kernels compile
(streamlstm/backends/compile_note.py)."""
import numpy as np

from streamlstm.backends import compile_note, specialize


def _fresh(module):
    def f(x):
        return np.sin(x) + 1.0
    f.__module__ = module
    return specialize.njit()(f)


def test_a_slow_compile_of_ours_is_announced_once(capfd, monkeypatch):
    monkeypatch.setattr(compile_note, "AFTER", 0.0)
    g = _fresh("streamlstm.probe")
    assert g(0.0) == 1.0
    err = capfd.readouterr().err
    assert err.count(compile_note.MESSAGE) + err.count(compile_note.MORE) == 1
    assert "streamlstm: ... done in" in err
    assert g(1.0) == np.sin(1.0) + 1.0          # compiled: nothing more
    assert capfd.readouterr().err == ""
    assert _fresh("streamlstm.probe")(0.0) == 1.0
    assert capfd.readouterr().err.count(compile_note.MORE) == 1    # once said, "more"


def test_quiet_and_other_code_say_nothing(capfd, monkeypatch):
    monkeypatch.setattr(compile_note, "AFTER", 0.0)
    with compile_note.quiet():
        assert _fresh("streamlstm.probe")(0.0) == 1.0
    assert _fresh("somebody_else")(0.0) == 1.0
    assert capfd.readouterr().err == ""


def test_a_fast_compile_says_nothing(capfd):
    assert compile_note.AFTER >= 1.0           # a compile this small takes ~0.1 s
    assert _fresh("streamlstm.probe")(0.0) == 1.0
    assert capfd.readouterr().err == ""
