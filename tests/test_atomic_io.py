import json
import os
import stat

from hwnas.atomic_io import append_jsonl, atomic_write_json, read_jsonl


def test_atomic_write_is_whole_and_readable(tmp_path):
    path = atomic_write_json(tmp_path / "a" / "x.json", {"k": 1})
    assert json.loads(path.read_text()) == {"k": 1}
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o044  # group/other can read
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temp file left


def test_append_after_torn_tail_keeps_file_valid(tmp_path):
    path = tmp_path / "d.jsonl"
    append_jsonl(path, {"i": 1})
    with open(path, "a") as fh:
        fh.write('{"i": 2, "trunc')  # interrupted write
    assert read_jsonl(path) == [{"i": 1}]
    append_jsonl(path, {"i": 3})
    assert read_jsonl(path) == [{"i": 1}, {"i": 3}]


def test_a_failed_stream_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    import pytest

    from hwnas.atomic_io import atomic_write_stream

    path = atomic_write_stream(tmp_path / "x.bin", lambda fh: fh.write(b"old"))

    def broken(fh):
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_stream(path, broken)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.bin"]
