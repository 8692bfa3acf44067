"""A benchmark report names the code it ran: the hash follows the files, not the commit, and a
working tree that differs from its commit says so."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from subliminal_scaling.planning.provenance import code_provenance, source_sha256


def _tree(root):
    (root / "src/subliminal_scaling/train").mkdir(parents=True)
    (root / "benchmarks").mkdir()
    (root / "src/subliminal_scaling/train/student.py").write_text("A = 1\n")
    (root / "benchmarks/bench_train.py").write_text("B = 2\n")
    (root / "notes.txt").write_text("not code\n")
    return root


def test_the_source_hash_follows_the_code_only(tmp_path):
    a = _tree(tmp_path / "a")
    b = _tree(tmp_path / "b")
    assert source_sha256(a) == source_sha256(b)
    (b / "notes.txt").write_text("other words\n")  # not a source file
    assert source_sha256(a) == source_sha256(b)
    (b / "src/subliminal_scaling/train/student.py").write_text("A = 2\n")
    assert source_sha256(a) != source_sha256(b)
    # a file moved keeps its bytes but is other code
    c = _tree(tmp_path / "c")
    (c / "benchmarks/bench_train.py").rename(c / "benchmarks/bench_other.py")
    assert source_sha256(a) != source_sha256(c)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_tree_that_differs_from_its_commit_is_dirty(tmp_path):
    repo = _tree(tmp_path / "r")
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    run("add", "-A")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    clean = code_provenance(repo)
    assert len(clean["git_head"]) == 40 and clean["git_dirty"] is False
    (repo / "benchmarks/bench_train.py").write_text("B = 3\n")
    dirty = code_provenance(repo)
    assert dirty["git_head"] == clean["git_head"] and dirty["git_dirty"] is True
    assert dirty["source_sha256_16"] != clean["source_sha256_16"]
    outside = code_provenance(_tree(tmp_path / "plain"))  # no git: no commit, no dirty flag
    assert outside["git_head"] is None and outside["git_dirty"] is None
