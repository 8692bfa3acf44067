"""Reading literals out of Python source with ast: nothing of the reference is imported or
executed."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from subliminal_scaling.protocol.schema import ProtocolExtractionError
from subliminal_scaling.runtime.io import InputFileError

# --------------------------------------------------------------------------- AST helpers


class _NotLiteral(Exception):
    pass


def _literal(node: ast.AST) -> Any:
    """Evaluate a literal node without executing anything.

    Beyond ``ast.literal_eval`` this accepts ``"a" + "b"`` and ``"...".strip()``, two shapes
    in which a long prompt string is commonly written.
    """
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left), _literal(node.right)
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        if isinstance(left, list) and isinstance(right, list):
            return left + right
        raise _NotLiteral
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"strip", "lstrip", "rstrip"}
        and not node.args
        and not node.keywords
    ):
        value = _literal(node.func.value)
        if isinstance(value, str):
            return getattr(value, node.func.attr)()
        raise _NotLiteral
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(elt) for elt in node.elts]
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise _NotLiteral from exc


def _try_literal(node: ast.AST) -> tuple[bool, Any]:
    try:
        return True, _literal(node)
    except _NotLiteral:
        return False, None


def _unwrap_list_value(node: ast.AST) -> ast.AST:
    """``field(default_factory=lambda: [...])`` / ``field(default=[...])`` -> the list node."""
    if isinstance(node, ast.Call):
        for kw in node.keywords:
            if kw.arg == "default_factory" and isinstance(kw.value, ast.Lambda):
                return _unwrap_list_value(kw.value.body)
            if kw.arg == "default":
                return _unwrap_list_value(kw.value)
    if isinstance(node, ast.Lambda):
        return _unwrap_list_value(node.body)
    return node


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _assignments(tree: ast.AST) -> Iterator[tuple[str, ast.AST, ast.AST]]:
    """(target name, value node, statement) for every simple ``name = value`` assignment."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    yield target.id, node.value, node
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.value is not None
        ):
            yield node.target.id, node.value, node


def _parse(path: Path) -> ast.Module:
    if not path.is_file():
        raise InputFileError(f"{path}: file not found (is the reference submodule checked out?)")
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot parse as Python ({exc})") from exc


def _fail(path: Path, message: str) -> ProtocolExtractionError:
    return ProtocolExtractionError(f"{path}: {message}")
