"""Atomic writes: a failed write leaves the old file intact; results get the usual mode;
truncated or malformed inputs fail naming the file."""

from __future__ import annotations

import os

import pytest

from subliminal_scaling.runtime import io


def test_failed_write_keeps_previous_content(tmp_path):
    path = tmp_path / "out.json"
    io.write_json(path, {"a": 1})
    with pytest.raises(RuntimeError), io.atomic_path(path) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed")
    assert io.read_json(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind


def test_outputs_get_the_umask_mode_not_private(tmp_path):
    mask = os.umask(0o022)
    try:
        io.write_json(tmp_path / "x.json", {})
        with io.atomic_dir(tmp_path / "d") as d:
            (d / "f").write_text("x")
    finally:
        os.umask(mask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_gzip_json_is_deterministic(tmp_path):
    io.write_json(tmp_path / "a.json.gz", {"x": [1, 2]})
    io.write_json(tmp_path / "b.json.gz", {"x": [1, 2]})
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()
    assert io.read_json(tmp_path / "a.json.gz") == {"x": [1, 2]}


def test_truncated_jsonl_names_the_file(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text('{"id": 0}\n{"id": 1, "comp')
    with pytest.raises(io.InputFileError, match=r"raw\.jsonl"):
        io.read_jsonl(path)
    path.write_text('{"id": 0}\nnot json\n')
    with pytest.raises(io.InputFileError, match=r"raw\.jsonl:2"):
        io.read_jsonl(path)
    with pytest.raises(io.InputFileError, match=r"missing\.json"):
        io.read_json(tmp_path / "missing.json")
