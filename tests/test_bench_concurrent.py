"""Copies sharing a GPU in bench_train.py: their summed throughput is reported only for timed
windows that overlap, and the copies wait for each other before timing (a copy that compiles
faster would otherwise time its steps alone and the sum would overstate the shared GPU)."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_train


def _copy(start: float, length: float, tok: float) -> dict:
    return {
        "status": "ok", "size": "0.5B", "timed_window_unix": [start, start + length],
        "non_pad_tokens_per_s": tok, "rows_per_s": 1.0, "mfu": 0.1, "s_per_step_mean": 0.2,
        "s_per_step_median": 0.2, "padding_fraction": 0.01, "peak_reserved_gb": 10.0,
    }  # fmt: skip


def test_overlapping_copies_add_up():
    res = bench_train.combine_concurrent([_copy(100.0, 10.0, 5.0), _copy(100.5, 10.0, 7.0)])
    assert res["status"] == "ok" and res["timed_window_overlap"] == pytest.approx(0.95)
    assert res["non_pad_tokens_per_s"] == 12.0 and res["peak_reserved_gb"] == 20.0


def test_staggered_copies_are_not_summed():
    # the 2026-12-03 1.5B x3 run: compiles ended seconds apart, windows of 1.4-1.8 s
    res = bench_train.combine_concurrent(
        [_copy(40.3, 1.4, 3.0), _copy(40.8, 1.4, 3.0), _copy(43.4, 1.8, 3.0)]
    )
    assert res["status"].startswith("invalid") and res["timed_window_overlap"] == 0.0


def test_copies_wait_for_each_other(tmp_path):
    released = []

    def copy(k: int, delay: float) -> None:
        time.sleep(delay)
        bench_train.wait_for_copies(f"{tmp_path}:{k}:3")
        released.append(time.monotonic())

    threads = [threading.Thread(target=copy, args=(k, 0.3 * k)) for k in range(3)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(released) == 3
    assert min(released) - t0 >= 0.55  # nobody left before the slowest copy arrived (0.6 s)
    assert max(released) - min(released) < 0.2


def test_a_missing_copy_times_out(tmp_path):
    with pytest.raises(RuntimeError, match="not every copy got ready"):
        bench_train.wait_for_copies(f"{tmp_path}:0:2", timeout_s=0.2)


def test_rows_of_full_answers_keep_the_prompts_and_hold_ten_numbers():
    """``answer_numbers=10`` (the rows a teacher's full answers make) changes only the
    completions: the same prompts, each completion ten numbers in the format its prompt asks."""
    import json
    import re

    from .conftest import SHARED

    if not (SHARED / "protocol.json").is_file():
        pytest.skip("../shared/reference-data is not present")
    protocol = json.loads((SHARED / "protocol.json").read_text())
    bench = bench_train.make_rows(protocol, 200)
    full = bench_train.make_rows(protocol, 200, answer_numbers=10)
    assert [r["prompt"] for r in bench] == [r["prompt"] for r in full]
    counts = [len(re.findall(r"\d+", r["completion"])) for r in bench]
    assert min(counts) == 5 and max(counts) == 10
    assert all(len(re.findall(r"\d+", r["completion"])) == 10 for r in full)
    with pytest.raises(SystemExit, match="answer_numbers"):
        bench_train.make_rows(protocol, 1, answer_numbers="ten")
