"""The hash of the code that builds a table: its builder's source and the source of every
function of this repository it calls, transitively, with the module constants they read.
Comments, docstrings and formatting aside (the parsed syntax tree is hashed), so that only a
change that can change the table changes the hash. Recorded per table in the build manifest,
where skewless reads it as part of each feature's definition fingerprint.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import textwrap
from collections.abc import Callable
from types import ModuleType
from typing import Any


def code_hash(*functions: Callable[..., Any], parameters: Any = None) -> str:
    """sha256 over the functions' code and what they call of this repository, and the build
    parameters given (a lead time)."""
    seen: dict[str, str] = {}
    for function in functions:
        _collect(function, seen)
    text = json.dumps({"code": seen, "parameters": parameters}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _collect(function: Callable[..., Any], seen: dict[str, str]) -> None:
    key = f"{function.__module__}.{function.__qualname__}"
    if key in seen:
        return
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    seen[key] = ast.dump(_without_docstrings(tree))
    package = function.__module__.split(".")[0]
    namespace = getattr(function, "__globals__", {})
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            name, target = f"{function.__module__}.{node.id}", namespace.get(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = namespace.get(node.value.id)
            if not isinstance(module, ModuleType):
                continue
            name, target = f"{module.__name__}.{node.attr}", getattr(module, node.attr, None)
        else:
            continue
        if inspect.isfunction(target) and target.__module__.split(".")[0] == package:
            _collect(target, seen)
        elif name.split(".")[0] == package and _is_value(target):
            seen[name] = repr(target)  # a module's constant: a Timedelta, a list of columns


def _is_value(target: Any) -> bool:
    """A module-level value the code reads (not a module, class or function, not absent)."""
    return target is not None and not (
        isinstance(target, ModuleType) or inspect.isclass(target) or callable(target)
    )


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree
