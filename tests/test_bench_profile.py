"""bench_train.py --profile: GPU time is counted once per kernel (the old summary also counted the
aten op that launched it, and reported a step busy 178% of its wall time), overlapping kernels
count once in the busy time, and kernels fall into the kinds the report names."""

from __future__ import annotations

import sys

import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_train


def test_busy_time_is_the_union_of_kernel_spans():
    # two streams overlapping for 5 us, a gap, a kernel inside another
    spans = [(0.0, 10.0), (5.0, 15.0), (20.0, 30.0), (22.0, 25.0)]
    assert bench_train.busy_time(spans) == 25.0
    assert bench_train.busy_time([]) == 0.0
    assert bench_train.busy_time([(3.0, 4.0), (0.0, 1.0)]) == 2.0


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("nvjet_sm90_tst_256x128_64x4_2x1_v_bz_coopA_NNT", "gemm"),
        ("void cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64>", "gemm"),
        ("void flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128>>", "attention"),
        ("triton_poi_fused_add_mul_silu_0", "compiled (triton)"),
        ("triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_1", "compiled (triton)"),
        ("void multi_tensor_apply_kernel<...adam...>", "optimizer"),
        ("void unrolled_elementwise_kernel<direct_copy_kernel_cuda>", "copy / cast"),
        ("void vectorized_elementwise_kernel<8, CUDAFunctor_add>", "elementwise (aten)"),
        ("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float>>", "reduction"),
        ("Memset (Device)", "memset"),
        ("some_new_kernel", "other"),
    ],
)  # fmt: skip
def test_kernel_kinds(name, kind):
    assert bench_train.kernel_kind(name) == kind


def test_profile_summary_of_a_cpu_step_has_no_kernels():
    import torch
    from torch.profiler import ProfilerActivity, profile

    x, a = torch.randn(64, 32), torch.randn(32, 8)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        (x @ a).sum()
    s = bench_train.profile_summary(prof, wall_s=0.5, lora_rank=8)
    assert s["kernels"] == 0 and s["device_busy_s"] == 0.0 and s["device_busy_fraction"] == 0.0
    assert s["step_wall_s"] == 0.5 and s["top_kernels"] == []


class _Ev:
    def __init__(self, start: float, end: float, name: str) -> None:
        import types

        self.time_range = types.SimpleNamespace(start=start, end=end)
        self.name = name


def test_idle_gaps_name_the_cpu_op_the_gpu_waits_on():
    kernels = [_Ev(0, 10, "gemm"), _Ev(5, 12, "side"), _Ev(15, 20, "add"), _Ev(500, 600, "mm")]
    cpu = [_Ev(0, 1000, "train_step"), _Ev(200, 300, "aten::item"), _Ev(250, 260, "cudaSync")]
    g = bench_train.idle_gaps(kernels, cpu)
    # the gaps: 12 -> 15 (3 us: the overlapping kernel ends later) and 20 -> 500 (480 us)
    assert g["idle_in_all_gaps_s"] == pytest.approx(483e-6)
    assert g["gaps_over_100us"] == 1 and g["idle_in_gaps_over_100us_s"] == pytest.approx(480e-6)
    longest = g["longest"][0]
    assert longest["ms"] == pytest.approx(0.48)
    assert (longest["after_kernel"], longest["before_kernel"]) == ("add", "mm")
    assert longest["cpu_ops_innermost_first"] == ["cudaSync", "aten::item", "train_step"]


def test_trainer_phases_are_labelled_in_a_profile():
    import types

    from torch.profiler import ProfilerActivity, profile

    calls = []
    handler = types.SimpleNamespace(on_step_end=lambda *a: calls.append("end") or "e")
    trainer = types.SimpleNamespace(
        training_step=lambda x: calls.append(x) or x * 2, callback_handler=handler
    )
    labels = bench_train.label_trainer_phases(trainer)
    assert labels == ["trainer.training_step", "callbacks.on_step_end"]  # the others are absent
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        assert trainer.training_step(3) == 6 and trainer.callback_handler.on_step_end() == "e"
    names = {e.name for e in prof.events()}
    assert {"trainer.training_step", "callbacks.on_step_end"} <= names and calls == [3, "end"]
