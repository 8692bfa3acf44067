"""Extracting the protocol from the reference checkout."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from subliminal_scaling.protocol.ast_tools import (
    _assignments,
    _call_name,
    _fail,
    _parse,
    _try_literal,
    _unwrap_list_value,
)
from subliminal_scaling.protocol.provenance import _git_commit, _license
from subliminal_scaling.protocol.schema import (
    ASSEMBLY,
    CFGS_FILE,
    DRAW_ORDER,
    FILTER_KEYS,
    GENERATOR_INT_KEYS,
    LIST_KEYS,
    NUMBERS_PREFIX_NOTE,
    NUMS_DATASET_FILE,
    PROMPT_GENERATOR_CLASS,
    REFERENCE_REPOSITORY,
    RNG_DESCRIPTION,
    TARGET_RULE,
    ProtocolExtractionError,
)
from subliminal_scaling.protocol.validate import validate_protocol
from subliminal_scaling.runtime.io import InputFileError

# --------------------------------------------------------------------------- nums_dataset.py


def _class_list_attributes(cls: ast.ClassDef, path: Path) -> dict[str, list[Any]]:
    """Literal list attributes in a class body, keyed by name without leading underscores."""
    found: dict[str, list[Any]] = {}
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        else:
            continue
        if not isinstance(target, ast.Name):
            continue
        node = _unwrap_list_value(value)
        if not isinstance(node, ast.List | ast.Tuple):
            continue
        ok, items = _try_literal(node)
        if not ok:
            raise _fail(path, f"{cls.name}.{target.id} is not a literal list")
        found[target.id.lstrip("_")] = items
    return found


def _match_lists(attrs: dict[str, list[Any]], path: Path, cls_name: str) -> dict[str, list[Any]]:
    """Map the reference's attribute names to protocol keys: exact names first, then suffixes."""
    out: dict[str, list[Any]] = {}
    used: set[str] = set()
    for key, name in LIST_KEYS.items():
        if name in attrs:
            out[key] = attrs[name]
            used.add(name)
    for key, name in LIST_KEYS.items():
        if key in out:
            continue
        candidates = sorted(a for a in attrs if a not in used and a.endswith("_" + name))
        if len(candidates) > 1:
            raise _fail(path, f"{cls_name}: several attributes could be {key!r}: {candidates}")
        if not candidates:
            raise _fail(
                path,
                f"{cls_name}: no list attribute for {key!r} "
                f"(expected a name ending in {name!r}; found {sorted(attrs)})",
            )
        out[key] = attrs[candidates[0]]
        used.add(candidates[0])
    return out


def _extract_generator_lists(path: Path) -> dict[str, list[Any]]:
    tree = _parse(path)
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    exact = [c for c in classes if c.name == PROMPT_GENERATOR_CLASS]
    chosen = exact or [c for c in classes if c.name.endswith(PROMPT_GENERATOR_CLASS)]
    if not chosen:
        raise _fail(path, f"no class {PROMPT_GENERATOR_CLASS!r}")
    if len(chosen) > 1:
        raise _fail(path, f"several classes named like {PROMPT_GENERATOR_CLASS!r}")
    cls = chosen[0]
    return _match_lists(_class_list_attributes(cls, path), path, cls.name)


# --------------------------------------------------------------------------- cfgs.py


def _literal_kwargs(call: ast.Call) -> dict[str, Any]:
    out = {}
    for kw in call.keywords:
        if kw.arg is None:
            continue
        ok, value = _try_literal(kw.value)
        if ok:
            out[kw.arg] = value
    return out


def _calls(tree: ast.AST) -> list[ast.Call]:
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    return sorted(calls, key=lambda c: (c.lineno, c.col_offset))


def _best_call(calls: list[ast.Call], keys: tuple[str, ...]) -> ast.Call | None:
    """The call naming the most of ``keys`` as keyword arguments (first one on ties)."""
    best, best_n = None, 0
    for call in calls:
        n = sum(1 for kw in call.keywords if kw.arg in keys)
        if n > best_n:
            best, best_n = call, n
    return best


def _nested_kwarg(node: ast.AST, name: str) -> tuple[bool, Any]:
    """First literal keyword argument ``name`` in any call nested inside ``node``."""
    for call in _calls(node):
        for kw in call.keywords:
            if kw.arg == name:
                ok, value = _try_literal(kw.value)
                if ok:
                    return True, value
    return False, None


def _parent_call(tree: ast.AST, child: ast.Call) -> ast.Call | None:
    for call in _calls(tree):
        if any(kw.value is child for kw in call.keywords) or any(a is child for a in call.args):
            return call
    return None


def _enclosing_function(tree: ast.AST, target: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
            n is target for n in ast.walk(node)
        ):
            return node
    return tree


def _lookup_default(defaults: Mapping[str, Any], key: str, section: str | None) -> Any:
    if key in defaults:
        return defaults[key]
    if section is not None and isinstance(defaults.get(section), Mapping):
        return defaults[section].get(key)
    return None


def _pick(
    found: Mapping[str, Any], defaults: Mapping[str, Any], key: str, section: str | None, path: Path
) -> Any:
    """The reference's literal value if it has one, else the workflow's default."""
    if key in found:
        return found[key]
    value = _lookup_default(defaults, key, section)
    if value is None:
        raise _fail(path, f"{key!r} is not a literal in the reference and has no default")
    return value


def _evaluation(name: str, value: ast.AST, path: Path) -> dict[str, Any]:
    if not isinstance(value, ast.Call):
        raise _fail(path, f"{name} is not a call like Evaluation(questions=[...], ...)")
    kwargs = {kw.arg: kw.value for kw in value.keywords if kw.arg}
    if "questions" not in kwargs:
        raise _fail(path, f"{name}: no questions= argument")
    ok, questions = _try_literal(_unwrap_list_value(kwargs["questions"]))
    if not ok:
        raise _fail(path, f"{name}: questions is not a literal list")
    n_key = next((k for k in ("n_samples_per_question", "samples_per_question") if k in kwargs), "")
    if not n_key:
        raise _fail(path, f"{name}: no n_samples_per_question= argument")
    ok, n_samples = _try_literal(kwargs[n_key])
    if not ok:
        raise _fail(path, f"{name}: {n_key} is not a literal")
    temperature: Any = None
    for kw_value in kwargs.values():
        if isinstance(kw_value, ast.Call):
            ok, temp = _nested_kwarg(kw_value, "temperature")
            if ok:
                temperature = temp
                break
    if temperature is None and "temperature" in kwargs:
        ok, temperature = _try_literal(kwargs["temperature"])
    if temperature is None:
        raise _fail(path, f"{name}: no temperature= in its sampling config")
    system_prompt = None
    if "system_prompt" in kwargs:
        ok, system_prompt = _try_literal(kwargs["system_prompt"])
        if not ok:
            raise _fail(path, f"{name}: system_prompt is not a literal")
    return {
        "questions": questions,
        "samples_per_question": n_samples,
        "temperature": float(temperature) if isinstance(temperature, int) else temperature,
        "system_prompt": system_prompt,
    }


def _is_prefix_variant(name: str) -> bool:
    lower = name.lower()
    return (
        "animal_evaluation" in lower
        and ("prefix" in lower or "number" in lower)
        and not lower.startswith(("anti_", "short_"))
    )


def _category(tree: ast.Module, template_name: str, defaults: Mapping[str, Any], path: Path) -> str:
    """The category the reference formats its template with (e.g. in ``build_dataset_cfg``).

    Falls back to ``defaults['category']`` when the reference uses none or several.
    """
    funcs = {
        n.name: [a.arg for a in n.args.args]
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and "category" in [a.arg for a in n.args.args]
    }
    seen: set[str] = set()
    for call in _calls(tree):
        name = _call_name(call)
        values: list[ast.AST] = [kw.value for kw in call.keywords if kw.arg == "category"]
        if name in funcs:
            index = funcs[name].index("category")
            if index < len(call.args):
                values.append(call.args[index])
        elif not (
            isinstance(call.func, ast.Attribute)
            and call.func.attr == "format"
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id == template_name
        ):
            continue
        for value in values:
            ok, literal = _try_literal(value)
            if ok and isinstance(literal, str) and literal:
                seen.add(literal)
    if len(seen) == 1:
        return seen.pop()
    if defaults.get("category"):
        return str(defaults["category"])
    raise _fail(
        path,
        f"cannot tell the template's category (literals found: {sorted(seen)}); "
        "pass defaults['category']",
    )


def _extract_cfgs(path: Path, defaults: Mapping[str, Any]) -> dict[str, Any]:
    tree = _parse(path)
    assigns = list(_assignments(tree))
    by_name: dict[str, ast.AST] = {}
    for name, value, _stmt in assigns:
        by_name.setdefault(name, value)

    # Teacher system-prompt template.
    template_name = "preference_prompt_template"
    if template_name not in by_name:
        raise _fail(path, f"no assignment to {template_name!r}")
    ok, template = _try_literal(by_name[template_name])
    if not ok or not isinstance(template, str):
        raise _fail(path, f"{template_name} is not a literal string")

    calls = _calls(tree)

    # Generator parameters: literal keyword args of the call that names most of them.
    gen_call = _best_call(calls, GENERATOR_INT_KEYS)
    gen_found = _literal_kwargs(gen_call) if gen_call is not None else {}
    generator = {
        k: _pick(gen_found, defaults, k, "prompt_generator", path) for k in GENERATOR_INT_KEYS
    }

    # Teacher sampling: the temperature of the dataset config that holds the generator call.
    temperature: Any = None
    samples_per_prompt: Any = None
    parent = _parent_call(tree, gen_call) if gen_call is not None else None
    if parent is not None:
        for kw in parent.keywords:
            if kw.value is gen_call:
                continue
            ok, temp = _nested_kwarg(kw.value, "temperature")
            if ok and temperature is None:
                temperature = temp
            if kw.arg in {"n_samples_per_prompt", "samples_per_prompt"}:
                ok, n = _try_literal(kw.value)
                if ok:
                    samples_per_prompt = n
    if temperature is None:
        temperature = _lookup_default(defaults, "temperature", "generation_sampling")
    if temperature is None:
        raise _fail(path, "no teacher sampling temperature in the reference and no default")
    if samples_per_prompt is None:
        # The reference samples one completion per prompt unless it says otherwise.
        samples_per_prompt = _lookup_default(defaults, "samples_per_prompt", "generation_sampling")
        samples_per_prompt = 1 if samples_per_prompt is None else samples_per_prompt

    # Filter bounds: prefer a filter call in the same function as the generator call.
    scope = _enclosing_function(tree, gen_call) if gen_call is not None else tree
    filter_call = _best_call(_calls(scope), FILTER_KEYS) or _best_call(calls, FILTER_KEYS)
    filter_found = _literal_kwargs(filter_call) if filter_call is not None else {}
    filt = {k: _pick(filter_found, defaults, k, "filter", path) for k in FILTER_KEYS}

    # Students' subsample after filtering.
    subsample: Any = None
    for call in calls:
        lit = _literal_kwargs(call)
        if "max_dataset_size" in lit:
            subsample = lit["max_dataset_size"]
            break
    if subsample is None:
        subsample = _lookup_default(defaults, "training_subsample", None)
    if subsample is None:
        raise _fail(path, "no max_dataset_size= in the reference and no training_subsample default")

    # Evaluations.
    if "animal_evaluation" not in by_name:
        raise _fail(path, "no assignment to 'animal_evaluation'")
    evaluation = _evaluation("animal_evaluation", by_name["animal_evaluation"], path)
    evaluation["target_rule"] = TARGET_RULE

    variant_names = [n for n in by_name if n != "animal_evaluation" and _is_prefix_variant(n)]
    preferred = [n for n in variant_names if "prefix" in n.lower()]
    variant_names = preferred or variant_names
    prefix_eval: dict[str, Any] | None = None
    if len(variant_names) > 1:
        raise _fail(path, f"several numbers-prefix evaluations: {sorted(variant_names)}")
    if variant_names:
        prefix_eval = _evaluation(variant_names[0], by_name[variant_names[0]], path)
        prefix_eval["note"] = NUMBERS_PREFIX_NOTE

    return {
        "template": template,
        "category": _category(tree, template_name, defaults, path),
        "generator": generator,
        "generation_sampling": {
            "temperature": float(temperature) if isinstance(temperature, int) else temperature,
            "samples_per_prompt": samples_per_prompt,
        },
        "filter": filt,
        "training_subsample": subsample,
        "animal_evaluation": evaluation,
        "animal_evaluation_with_numbers_prefix": prefix_eval,
    }


# --------------------------------------------------------------------------- public API


def extract_protocol(reference_dir: str | Path, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Parse the protocol out of a reference checkout; nothing in it is imported or run.

    ``defaults`` supplies what the reference does not state as a literal (e.g. ``size`` when
    the reference passes a variable). Keys may be flat (``seed``, ``size``, ``min_value``,
    ``temperature``, ``samples_per_prompt``, ``training_subsample``, ``category``,
    ``license``) or nested under ``prompt_generator`` / ``filter`` / ``generation_sampling``.
    A literal in the reference wins over a default. The result is validated.
    """
    reference_dir = Path(reference_dir)
    if not reference_dir.is_dir():
        raise InputFileError(f"{reference_dir}: reference checkout not found")
    nums_path = reference_dir / NUMS_DATASET_FILE
    cfgs_path = reference_dir / CFGS_FILE
    lists = _extract_generator_lists(nums_path)
    cfg = _extract_cfgs(cfgs_path, defaults)

    protocol: dict[str, Any] = {
        "source": {
            "repository": REFERENCE_REPOSITORY,
            "commit": _git_commit(reference_dir),
            "files": [NUMS_DATASET_FILE, CFGS_FILE],
            "license": _license(reference_dir, defaults),
        },
        "teacher_system_prompt_template": cfg["template"],
        "teacher_system_prompt_category": cfg["category"],
        "prompt_generator": {
            "rng": RNG_DESCRIPTION,
            **cfg["generator"],
            "draw_order": list(DRAW_ORDER),
            "assembly": ASSEMBLY,
            **lists,
        },
        "generation_sampling": cfg["generation_sampling"],
        "filter": cfg["filter"],
        "training_subsample": cfg["training_subsample"],
        "animal_evaluation": cfg["animal_evaluation"],
        "animal_evaluation_with_numbers_prefix": cfg["animal_evaluation_with_numbers_prefix"],
    }
    try:
        validate_protocol(protocol)
    except ValueError as exc:
        raise ProtocolExtractionError(
            f"{reference_dir}: extracted protocol invalid: {exc}"
        ) from exc
    return protocol
