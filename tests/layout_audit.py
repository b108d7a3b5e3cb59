"""Size of the code, read from the source: ``python tests/layout_audit.py [REPO]``

Prints the largest modules, the longest functions and the functions with the most parameters
(``self``/``cls`` not counted) under ``models/`` and ``workflows/``: the before/after numbers
of a refactor note.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def audit(root: Path) -> dict:
    modules, functions = [], []
    for path in sorted(p for d in ("models", "workflows") for p in (root / d).rglob("*.py")):
        src = path.read_text()
        rel = str(path.relative_to(root))
        modules.append((len(src.splitlines()), rel))
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
                n = len(names) - (names[:1] in (["self"], ["cls"])) + bool(a.vararg) + bool(a.kwarg)
                functions.append((node.end_lineno - node.lineno + 1, n, f"{rel}:{node.name}"))
    return {"largest modules": sorted(modules)[-3:][::-1],
            "longest functions (lines, params, name)": sorted(functions)[-3:][::-1],
            "most parameters (params, name)": sorted((f[1], f[2]) for f in functions)[-3:][::-1],
            "functions with more than 8 parameters": sum(f[1] > 8 for f in functions)}


if __name__ == "__main__":
    for key, value in audit(Path(sys.argv[1] if len(sys.argv) > 1 else ".")).items():
        print(f"{key}: {value}")
