"""Issue 15.5: one export at a time per --out. A second process that prepares the same directory
while another holds it (prepare .. commit) fails at once with one line, before any work."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from lutham.api import export
from lutham.exporter.outputs import OutputSet

NAMES = ("dense.pte", "lutham.pte", "report.json")

HOLDER = textwrap.dedent("""
    import sys
    from lutham.exporter.outputs import OutputSet
    s = OutputSet(sys.argv[1], ("dense.pte", "lutham.pte", "report.json"))
    s.prepare()
    print("prepared", flush=True)
    sys.stdin.readline()  # hold the directory until the test says commit
    for n in s.names:
        s.add(n, b"holder " + n.encode())
    s.commit()
    print("committed", flush=True)
""")


def _holder(directory):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "prepared"
    return p


def test_second_writer_of_one_out_fails_with_one_line(tmp_path):
    out = tmp_path / "out"
    holder = _holder(out)
    try:
        with pytest.raises(ValueError) as e:
            OutputSet(out, NAMES).prepare()
        assert str(e.value) == (f"--out {out} is being written by another lutham export right now; "
                                "wait for it to finish or choose another --out")
        # the same through export(): refused before anything is built
        with pytest.raises(ValueError, match="is being written by another lutham export"):
            export({"backbone": "none", "heads": 2, "widths": [16, 4], "grid": 4, "codebook_size": 8, "out": str(out)})
    finally:
        holder.communicate("go\n", timeout=60)
    assert holder.returncode == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {n: b"holder " + n.encode() for n in NAMES}
    s = OutputSet(out, NAMES)  # free again once the holder committed
    s.prepare()
    for n in NAMES:
        s.add(n, n.encode())
    s.commit()
    assert (out / "dense.pte").read_bytes() == b"dense.pte"


def test_a_failed_export_releases_the_directory(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "m.py").write_text("def build():\n    raise RuntimeError('boom')\n")
    with pytest.raises(ValueError, match="boom"):  # fails after prepare(), in the model build
        export({"model": f"{tmp_path}/m.py:build", "out": str(out)})
    holder = _holder(out)  # another process can take it: the failed export let go
    holder.communicate("go\n", timeout=60)
    assert holder.returncode == 0
