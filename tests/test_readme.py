"""The README runs as written: every ```python block (in a scratch directory that
sees the repository's examples/), and every ``streamlstm`` and
``python examples/...`` command of its ```bash blocks, in README order, in one
scratch directory - the commands that make the example files first, then the
ones that read them, checkpoints and all.

A bash block right after a ``<!-- readme-test: skip (why) -->`` line is not run
(the Kafka example: it needs a broker).  Other lines (``pip install``, ``bash
tests/run.sh``) are not commands of this project and are left alone.  The one
change to a ``streamlstm run`` command: ``--backend reference`` (NumPy, no Numba
compile: the test stays fast; the CPU backend's forecasts equal it, which
tests/test_cpu_backend.py checks)."""
import os
import pathlib
import re
import shlex

import pytest
from click.testing import CliRunner

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
SKIP = "<!-- readme-test: skip"
SHELL = [(m.group(2), SKIP in (m.group(1) or ""))
         for m in re.finditer(r"(<!--[^\n]*-->\n)?```(?:bash|console|sh)\n(.*?)```", README, re.S)]
NOT_OURS = ("pip", "bash")


def commands(block):
    """The commands of a shell block: continuation lines joined, comments and
    ``$ `` prompts dropped."""
    text = re.sub(r"\\\n", " ", block)
    for line in text.splitlines():
        argv = shlex.split(line.strip().removeprefix("$ "), comments=True)
        if argv:
            yield argv


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(code, tmp_path, monkeypatch):
    os.symlink(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def test_readme_has_shell_examples_of_every_kind_of_source():
    argvs = [a for block, skip in SHELL if not skip for a in commands(block)]
    runs = [" ".join(a) for a in argvs if a[:2] == ["streamlstm", "run"]]
    for needle in ("--source lake/", "--source lake/date=*/*.parquet", "--csv-sep ;",
                   "--replay", "--checkpoint", "--init-from", "--metrics-out", "--horizon"):
        assert any(needle in r for r in runs), needle
    assert any(skip for _, skip in SHELL)          # the Kafka example is marked


def run_command(argv):
    """One README command, in-process: ``streamlstm ...`` through click,
    ``python examples/X.py ...`` through the script's ``main(argv)``."""
    if argv[0] == "streamlstm":
        from streamlstm.cli.app import main
        args = argv[1:] + (["--backend", "reference"] if argv[1] == "run" else [])
        res = CliRunner().invoke(main, args, catch_exceptions=False)
        assert res.exit_code == 0, f"{shlex.join(argv)}\n{res.output}"
        return res
    if argv[0] == "python" and argv[1].startswith("examples/"):
        import importlib.util
        spec = importlib.util.spec_from_file_location("readme_example", argv[1])
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.main(argv[2:])
        return None
    assert argv[0] in NOT_OURS, f"a README command this test does not know: {shlex.join(argv)}"
    return None


def test_readme_shell_commands_run(tmp_path, monkeypatch):
    os.symlink(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    ran = []
    for block, skip in SHELL:
        if skip:
            continue
        for argv in commands(block):
            res = run_command(argv)
            if res is not None:
                ran.append((shlex.join(argv), res))
    assert len(ran) >= 8
    assert (tmp_path / "report.html").exists() and (tmp_path / "series.csv").exists()
    assert (tmp_path / "day2-forecasts.parquet").exists()
