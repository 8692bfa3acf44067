"""The configured transport."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from subliminal_scaling.publish.hf_hub import HfHub
from subliminal_scaling.publish.hub import Hub
from subliminal_scaling.publish.local_hub import LocalHub


def make_hub(cfg: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Hub:
    """Build the configured backend: ``{"backend": "hf"|"local", "namespace", "local_dir", ...}``.

    The Hub token comes from ``HF_TOKEN`` in the environment, never from config files.
    """
    env = os.environ if env is None else env
    backend = cfg.get("backend")
    if backend == "local":
        if not cfg.get("local_dir"):
            raise ValueError("hub config: backend 'local' needs local_dir")
        return LocalHub(
            cfg["local_dir"],
            namespace=cfg.get("namespace") or "local",
            max_retries=int(cfg.get("max_retries", 5)),
            backoff_s=float(cfg.get("backoff_s", 2.0)),
        )
    if backend == "hf":
        return HfHub(
            token=env.get("HF_TOKEN") or None,
            namespace=cfg.get("namespace") or None,
            max_retries=int(cfg.get("max_retries", 5)),
            backoff_s=float(cfg.get("backoff_s", 2.0)),
        )
    raise ValueError(f"hub config: backend must be 'hf' or 'local', got {backend!r}")
