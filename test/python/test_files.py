"""files.py: the atomic file writer."""

import pytest

from lutham.files import write_atomic


def test_write_atomic_never_leaves_a_partial_file(tmp_path):
    target = tmp_path / "x.pte"
    write_atomic(target, b"old")

    with pytest.raises(TypeError):
        write_atomic(target, object())  # fails while writing
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.pte"]
