"""Scaling-law fits of the transfer effect against model size, with bootstrap intervals and
information criteria."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from subliminal_scaling.report.bootstrap import _rng, percentile_ci
from subliminal_scaling.report.schema import _Z95, FORMS, MEAN_ANIMAL

# --- scaling fits ----------------------------------------------------------------------------

_FORM_INFO = {
    "log_linear": {"formula": "a + b*x", "coefficients": ["a", "b"]},
    "power": {"formula": "a * (N/1e9)**b", "coefficients": ["a", "b"]},
    "quadratic_log": {"formula": "a + b*x + c*x**2", "coefficients": ["a", "b", "c"]},
}
_POWER_B_RANGE = (-3.0, 3.0)
_POWER_GRID = np.linspace(*_POWER_B_RANGE, 601)


def size_x(params: Any) -> np.ndarray:
    """The fits' x axis: log10 of the parameter count in billions (x = 0 at 1B)."""
    return np.log10(np.asarray(params, dtype=float) / 1e9)


def predict(form: str, coefficients: Mapping[str, float], params: Any) -> np.ndarray:
    """Evaluate a fitted form (coefficients as in ``fit_scaling``'s output) at parameter counts."""
    x = size_x(params)
    c = coefficients
    if form == "log_linear":
        return c["a"] + c["b"] * x
    if form == "quadratic_log":
        return c["a"] + c["b"] * x + c["c"] * x**2
    if form == "power":
        return c["a"] * (np.asarray(params, dtype=float) / 1e9) ** c["b"]
    raise ValueError(f"unknown form {form!r}; known: {FORMS}")


def _wls(design: np.ndarray, w: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Weighted least-squares coefficients for each row of ``ys`` (shape (m, n) -> (m, p))."""
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(design * sw[:, None], (ys * sw).T, rcond=None)
    return coef.T


def _power_fit(x: np.ndarray, w: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Fit a*10**(b*x) to each row of ``ys``: a is profiled out, b by grid + parabolic step."""
    z = 10.0 ** (np.outer(_POWER_GRID, x))  # (g, n)
    szz = (z**2 * w).sum(axis=1)  # (g,)
    syz = (ys * w) @ z.T  # (m, g)
    rss = (ys**2 * w).sum(axis=1)[:, None] - syz**2 / szz
    j = np.clip(np.argmin(rss, axis=1), 1, len(_POWER_GRID) - 2)
    m = np.arange(len(ys))
    r0, r1, r2 = rss[m, j - 1], rss[m, j], rss[m, j + 1]
    denom = r0 - 2 * r1 + r2
    step = _POWER_GRID[1] - _POWER_GRID[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(denom > 0, 0.5 * (r0 - r2) / denom, 0.0)
    b = _POWER_GRID[j] + np.clip(shift, -1, 1) * step
    zb = 10.0 ** (b[:, None] * x[None, :])
    a = (ys * w * zb).sum(axis=1) / (w * zb**2).sum(axis=1)
    return np.column_stack([a, b])


def _fit_many(form: str, params: np.ndarray, w: np.ndarray, ys: np.ndarray) -> np.ndarray:
    x = size_x(params)
    if form == "log_linear":
        return _wls(np.column_stack([np.ones_like(x), x]), w, ys)
    if form == "quadratic_log":
        return _wls(np.column_stack([np.ones_like(x), x, x**2]), w, ys)
    if form == "power":
        return _power_fit(x, w, ys)
    raise ValueError(f"unknown form {form!r}; known: {FORMS}")


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _effect_points(effects: pd.DataFrame) -> pd.DataFrame:
    df = effects
    if "animal" in df:
        df = df[df["animal"] == MEAN_ANIMAL]
    if "missing" in df:
        df = df[~df["missing"].astype(bool)]
    df = df[np.isfinite(df["effect"].astype(float)) & np.isfinite(df["params"].astype(float))]
    if "epoch" in df and df["epoch"].dropna().nunique() > 1:
        raise ValueError("fit_scaling needs one epoch; filter transfer_effect(epoch='all') first")
    if df["model"].duplicated().any():
        raise ValueError("fit_scaling needs one row per model")
    return df.sort_values("params").reset_index(drop=True)


def _vertex_params(b: float, c: float) -> float:
    """Parameter count at the quadratic's extremum (x clipped to ±30 so it stays finite)."""
    return float(1e9 * 10 ** float(np.clip(-b / (2 * c), -30, 30)))


def fit_scaling(
    effects: pd.DataFrame,
    forms: Sequence[str] = FORMS,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit the transfer effect against model size in several forms and pick one by AICc.

    ``effects`` has one row per model with ``model``, ``params``, ``effect`` and an
    uncertainty: ``ci_low``/``ci_high`` (se = CI width / 3.92, so the fit weighs points by the
    error bars drawn), else ``se``, else the s.d. of a ``boot`` column of replicates.
    ``transfer_effect`` output can be passed as is: its ``animal == "mean"`` rows are used,
    missing rows dropped.

    Forms, with x = log10(N / 1e9) (N = parameters): ``log_linear`` a + b·x; ``power``
    a·(N/1e9)^b (two parameters, so it is fittable with few sizes; a is the effect at 1B, its
    sign free, b searched in [-3, 3]); ``quadratic_log`` a + b·x + c·x² (can peak mid-range;
    ``vertex_params`` is the size at the extremum).

    Fits are weighted least squares (weights 1/se²) under a Gaussian likelihood with the
    measured se as each point's sd, so k = number of coefficients and -2 log L = chi² +
    sum log(2π se²). ``reduced_chi2`` well above 1 means the sizes scatter more than their
    error bars allow; then AIC favours richer forms too easily (``warning`` says so). Without
    any se the fit is unweighted with the sd estimated (k = coefficients + 1). AICc =
    AIC + 2k(k+1)/(n-k-1); when it is undefined for some fitted form (too few sizes) all forms
    are compared by AIC (``criterion`` says which). A form needs coefficients + 1 sizes to be
    fitted at all. Coefficient CIs are percentile intervals over refits to bootstrap draws of
    the effects: per size, a random replicate from ``boot`` if given, else effect + se·N(0, 1)
    (parametric), sizes drawn independently.
    """
    pts = _effect_points(effects)
    n = len(pts)
    N = pts["params"].to_numpy(float)
    y = pts["effect"].to_numpy(float)
    se = np.full(n, np.nan)
    if "ci_low" in pts and "ci_high" in pts:
        se = (pts["ci_high"].to_numpy(float) - pts["ci_low"].to_numpy(float)) / (2 * _Z95)
    if "se" in pts:
        se = np.where(np.isfinite(se), se, pts["se"].to_numpy(float))
    if "boot" in pts:
        boot_sd = [
            np.nanstd(b, ddof=1) if b is not None and len(b) > 1 else np.nan for b in pts["boot"]
        ]
        se = np.where(np.isfinite(se), se, np.asarray(boot_sd, dtype=float))
    weighted = n > 0 and bool(np.all(np.isfinite(se) & (se > 0)))
    w = 1.0 / se**2 if weighted else np.ones(n)

    rng = _rng(seed, "fit_scaling")
    draws: np.ndarray | None = None
    source = None
    if n and "boot" in pts and pts["boot"].notna().all():
        reps = [np.asarray(b, dtype=float) for b in pts["boot"]]
        reps = [r[np.isfinite(r)] for r in reps]
        if all(len(r) for r in reps):
            draws = np.column_stack([r[rng.integers(0, len(r), n_boot)] for r in reps])
            source = "bootstrap replicates of the effects"
    if draws is None and weighted:
        draws = y + se * rng.standard_normal((n_boot, n))
        source = "parametric: effect + se * N(0, 1)"

    result: dict[str, Any] = {
        "x": "log10(params / 1e9)",
        "n_points": n,
        "models": pts["model"].tolist(),
        "params": N.tolist(),
        "effect": y.tolist(),
        "se": se.tolist(),
        "weighted": weighted,
        "likelihood": (
            "Gaussian, sd_i = se_i (k = coefficients)"
            if weighted
            else "Gaussian, one sd estimated (k = coefficients + 1)"
        ),
        "ci_source": source,
        "n_boot": n_boot if draws is not None else 0,
        "warning": None,
        "forms": {},
    }
    for form in forms:
        if form not in _FORM_INFO:
            raise ValueError(f"unknown form {form!r}; known: {FORMS}")
        names = _FORM_INFO[form]["coefficients"]
        p = len(names)
        entry: dict[str, Any] = {"formula": _FORM_INFO[form]["formula"], "n_coefficients": p}
        if n < p + 1:
            entry |= {"fitted": False, "reason": f"needs >= {p + 1} model sizes, have {n}"}
            result["forms"][form] = entry
            continue
        coef = _fit_many(form, N, w, y[None, :])[0]
        coefs = dict(zip(names, coef.tolist(), strict=True))
        resid = y - predict(form, coefs, N)
        rss = float(max(np.sum(w * resid**2), 1e-300))
        if weighted:
            k = p
            neg2ll = rss + float(np.sum(np.log(2 * math.pi * se**2)))
        else:
            k = p + 1
            neg2ll = n * math.log(2 * math.pi * rss / n) + n
        aic = neg2ll + 2 * k
        aicc = aic + 2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else None
        entry |= {"fitted": True, "reason": None, "params": coefs, "k": k, "rss_weighted": rss}
        if weighted:
            chi2 = float(np.sum((resid / se) ** 2))
            entry |= {"chi2": chi2, "reduced_chi2": chi2 / (n - p)}
        entry |= {"aic": aic, "aicc": aicc}
        if form == "power" and min(abs(coef[1] - b) for b in _POWER_B_RANGE) < 1e-6:
            entry["note"] = "b at the edge of its search range"
        ci: dict[str, list[float] | None] = {nm: None for nm in names}
        boot_coefs = None
        if draws is not None:
            boot_coefs = _fit_many(form, N, w, draws)
            lo, hi = percentile_ci(boot_coefs.T)
            ci = {nm: [lo[i], hi[i]] for i, nm in enumerate(names)}
        entry["ci"] = ci
        if form == "quadratic_log":
            _, b, c = coef
            entry["vertex_params"] = _vertex_params(b, c) if c != 0 else None
            entry["vertex_is_max"] = bool(c < 0)
            if boot_coefs is not None:
                bc = boot_coefs
                concave = bc[:, 2] < 0
                entry["p_concave"] = float(concave.mean())
                if concave.any():
                    lo, hi = np.nanpercentile(-bc[concave, 1] / (2 * bc[concave, 2]), [2.5, 97.5])
                    entry["vertex_params_ci_if_max"] = [
                        _vertex_params(2 * lo, -1),
                        _vertex_params(2 * hi, -1),
                    ]
        result["forms"][form] = entry

    fitted = {f: e for f, e in result["forms"].items() if e["fitted"]}
    if fitted:
        use_aicc = all(e["aicc"] is not None for e in fitted.values())
        key = "aicc" if use_aicc else "aic"
        best = min(fitted, key=lambda f: fitted[f][key])
        scores = np.array([fitted[f][key] for f in fitted])
        rel = np.exp(-(scores - scores.min()) / 2)
        for e, r in zip(fitted.values(), rel / rel.sum(), strict=True):
            e["delta"] = e[key] - fitted[best][key]
            e["akaike_weight"] = float(r)
        result |= {"criterion": "AICc" if use_aicc else "AIC", "preferred": best}
        red = fitted[best].get("reduced_chi2")
        if red is not None and red > 2:
            result["warning"] = (
                f"reduced chi2 of the preferred form is {red:.1f}: sizes scatter more than "
                "their CIs allow, so the richer forms may be favoured too easily"
            )
    else:
        result |= {"criterion": None, "preferred": None}
    return _clean(result)
