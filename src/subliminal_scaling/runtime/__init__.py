"""Shared runtime of every stage: configuration and its typed specs, files, seeds, sampling
backends, GPU pool, job start-up, checkpoints, tracking, preflight."""
