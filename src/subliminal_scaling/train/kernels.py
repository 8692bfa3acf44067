"""Two speed paths for the students' trainer, neither of which changes what a step computes.

* ``torch_varlen`` attention: torch's FlashAttention variable-length kernel
  (``torch.nn.attention.varlen.varlen_attn``) on padding-free micro-batches. TRL's padding-free
  collator already passes each micro-batch's sequence boundaries (``cu_seq_lens_q``,
  ``max_length_q``, computed on the CPU) through the model to every attention call, so the
  kernel attends within each row only, with no mask to build (flex attention builds a block
  mask every forward pass). Registered with transformers' ``AttentionInterface`` under
  ``VARLEN`` so a config can name it like any other implementation.
* Regional compilation: ``torch.compile`` of each decoder layer instead of the whole model.
  The layers share one code object, so the compiled graph is reused for every layer; the
  elementwise work around the matrix products (LoRA's scale-and-add, RMSNorm, rotary, SwiGLU,
  residual adds) fuses into few kernels. Compiling the whole model did not finish within 10
  minutes on an H100 with variable lengths (benchmarks/README.md).

On the GPU, ``benchmarks/check_levers.py`` compares both with the padded float32 step (first-step
LoRA gradients, per-step losses) and ``benchmarks/bench_train.py`` measures their speed; the CPU
tests check the glue around the kernels.
"""

from __future__ import annotations

import inspect
from typing import Any

VARLEN = "torch_varlen"


#: (kernel, the keyword arguments this torch's kernel takes for causal GQA attention), set by
#: ``register_attention``: resolved once, outside the (possibly compiled) attention call.
_KERNEL: tuple[Any, dict[str, Any]] | None = None


def _resolve_kernel() -> tuple[Any, dict[str, Any]]:
    from torch.nn.attention.varlen import varlen_attn

    params = inspect.signature(varlen_attn).parameters
    if "is_causal" in params:  # torch <= 2.11
        causal: dict[str, Any] = {"is_causal": True}
    elif "window_size" in params:  # torch >= 2.12: causal = window (-1, 0)
        causal = {"window_size": (-1, 0)}
    else:
        raise RuntimeError("torch.nn.attention.varlen.varlen_attn: no causal option found")
    return varlen_attn, {"causal": causal, "gqa": "enable_gqa" in params}


def varlen_attention_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: Any = None,
    max_length_q: int | None = None,
    shared_gather: Any = None,
    shared_scatter: Any = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers attention function: ``query`` (1, Hq, T, D), ``key``/``value`` (1, Hkv, T,
    D) of one padding-free micro-batch -> (1, T, Hq, D), causal within each packed row.

    With ``shared_gather`` / ``shared_scatter`` (``train.prefix.SharedPrefix``: the rows' common
    prefix is in the micro-batch once) the kernel runs on the rows as they were, each with its
    own copy of the prefix's queries, keys and values (``shared_gather`` picks them), and
    ``shared_scatter`` picks each position's output back (the prefix's from the first row)."""
    import torch

    if query.shape[0] != 1 or cu_seq_lens_q is None or max_length_q is None:
        raise ValueError(
            f"attn_implementation {VARLEN!r} needs padding-free micro-batches "
            "(training.padding_free: true), which carry the sequence boundaries"
        )
    if dropout:
        raise ValueError(f"attn_implementation {VARLEN!r} has no attention dropout")
    if _KERNEL is None:
        raise RuntimeError(f"attn_implementation {VARLEN!r} used before register_attention()")
    kernel, how = _KERNEL
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (T, H, D)
    if shared_gather is not None:
        q, k, v = (t.index_select(0, shared_gather) for t in (q, k, v))
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    extra: dict[str, Any] = {"scale": scaling, **how["causal"]}
    if k.shape[1] != q.shape[1]:
        if how["gqa"]:
            extra["enable_gqa"] = True
        else:
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    cu = cu_seq_lens_q.to(device=q.device, dtype=torch.int32)
    out = kernel(q, k, v, cu, cu, int(max_length_q), int(max_length_q), **extra)
    if shared_scatter is not None:
        out = out.index_select(0, shared_scatter)
    return out.unsqueeze(0), None


def register_attention(name: str | None) -> None:
    """Make ``name`` known to transformers before a model is built with it (only ``VARLEN``
    needs registering).

    No mask function is registered: transformers then builds no mask for it at all (the
    boundaries are the mask). With one registered, every forward pass also ran transformers'
    packed-sequence detection on the GPU's ``position_ids`` and read its answer back
    (``find_packed_sequence_indices``: ``if (...).all()``), which makes the host wait for the
    GPU once per micro-batch."""
    global _KERNEL
    if name != VARLEN:
        return
    if _KERNEL is None:
        _KERNEL = _resolve_kernel()
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN, varlen_attention_forward)


def decoder_layers(model: Any) -> list[Any]:
    """The model's decoder layers (PEFT-wrapped or not): modules named ``...DecoderLayer``."""
    return [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]


def compile_decoder_layers(model: Any, backend: str = "inductor") -> int:
    """``torch.compile`` every decoder layer in place (regional compilation); returns how many.

    ``dynamic=None``: the first micro-batch length compiles a static graph, the second a
    dynamic one that serves every later length, so variable lengths cost two compiles.
    """
    layers = decoder_layers(model)
    if not layers:
        raise ValueError("training.compile_layers: the model has no '...DecoderLayer' modules")
    for layer in layers:
        layer.compile(backend=backend, dynamic=None)
    return len(layers)


#: checkpointed subclasses made by ``checkpoint_first_layers``, one per layer class
_CHECKPOINTED: dict[type, type] = {}


def _checkpointed(cls: type) -> type:
    """``cls`` whose call runs under non-reentrant activation checkpointing while training.

    The checkpoint wraps ``nn.Module.__call__``, so a layer compiled in place
    (``compile_decoder_layers``: its compiled call is inside ``__call__``) runs compiled both
    times, and the subclass keeps the class name: parameter names, adapters and
    ``decoder_layers`` are unchanged. Non-reentrant: the layer's inputs need not require
    gradients (with LoRA the embeddings are frozen, and the first layer's input does not).
    """
    if cls not in _CHECKPOINTED:
        import functools

        import torch
        from torch.utils.checkpoint import checkpoint

        def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not (self.training and torch.is_grad_enabled()):
                return cls.__call__(self, *args, **kwargs)
            call = functools.partial(cls.__call__, self)
            return checkpoint(call, *args, use_reentrant=False, **kwargs)

        _CHECKPOINTED[cls] = type(cls.__name__, (cls,), {"__call__": __call__})
    return _CHECKPOINTED[cls]


def checkpoint_first_layers(model: Any, n: int) -> int:
    """Recompute the first ``n`` decoder layers in the backward pass instead of keeping their
    activations (``training.checkpoint_layers``); returns ``n``.

    Why: a micro-batch's activations grow by one layer's worth per layer, and keeping a few
    layers fewer lets a larger micro-batch fit (32B: 30 rows instead of 20) at the price of
    running those layers' forward pass twice. The first layers, because the backward pass
    reaches them last, when the later layers' activations are already freed: recomputing them
    does not add to the peak. Same loss and gradients (an exact recomputation).
    """
    layers = decoder_layers(model)
    if n > len(layers):
        raise ValueError(
            f"training.checkpoint_layers: {n} is more than the model's {len(layers)} layers"
        )
    for layer in layers[:n]:
        if type(layer) not in _CHECKPOINTED.values():
            layer.__class__ = _checkpointed(type(layer))
    return n
