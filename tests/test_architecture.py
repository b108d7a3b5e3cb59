"""The floors of ``models/`` hold: read from the source (AST), not from the running code.

Floor order (each imports only its own floor and the ones below): ``models.base`` (0) <
``models.families`` (1) < ``models.inference`` (2) < ``models.evaluation`` (3) <
``workflows`` (4). Nothing under ``models/`` imports matplotlib; no private name
(``_name``) of one module is imported or reached into by another; no function takes more
than 8 parameters.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {"models.base": 0, "models.families": 1, "models.inference": 2,
          "models.evaluation": 3, "workflows": 4}
MAX_PARAMS = 8


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _floor(module: str) -> int | None:
    for prefix, floor in FLOORS.items():
        if module == prefix or module.startswith(prefix + "."):
            return floor
    return None


def _sources(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def _imports(tree: ast.AST, module: str) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) for every import, function-local ones included."""
    out = []
    package = module if module.count(".") < 1 else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:  # relative import
                base = package.split(".")
                target = ".".join(base[:len(base) - node.level + 1] + ([target] if target else []))
            out.append((node.lineno, target, [a.name for a in node.names]))
    return out


def _targets(target: str, names: list[str]) -> list[str]:
    """The modules an import reaches: ``from models.families import bnn`` reaches
    ``models.families.bnn``; ``from models import logistic`` reaches ``models.logistic``."""
    return [f"{target}.{n}" for n in names] if names else [target]


def test_every_module_sits_on_a_floor():
    homeless = [_module_name(p) for p in _sources("models")
                if _module_name(p) != "models" and _floor(_module_name(p)) is None]
    assert not homeless, f"modules outside the floors {list(FLOORS)}: {homeless}"


def test_each_floor_imports_only_itself_and_the_floors_below():
    bad = []
    for path in _sources("models", "workflows"):
        module = _module_name(path)
        own = _floor(module)
        if own is None:  # models/__init__.py: the public entry point and the old paths
            continue
        for line, target, names in _imports(ast.parse(path.read_text()), module):
            if target == "models":  # `from models import x`: the flat names, for users only
                bad.append(f"{path.relative_to(ROOT)}:{line} imports through `models` "
                           f"({names}); import from its floor")
                continue
            for reached in _targets(target, names):
                floor = _floor(reached)
                if floor is None and _floor(target) is not None:
                    floor = _floor(target)
                if floor is not None and floor > own:
                    bad.append(f"{path.relative_to(ROOT)}:{line} ({module}, floor {own}) imports "
                               f"{reached} (floor {floor})")
    assert not bad, "imports that go up a floor:\n" + "\n".join(bad)


def test_families_know_nothing_of_fitting():
    """The rule a newcomer relies on most: a model does not know how it will be fitted."""
    for path in _sources("models/families"):
        for line, target, names in _imports(ast.parse(path.read_text()), _module_name(path)):
            assert not target.startswith(("models.inference", "models.evaluation", "workflows")), \
                f"{path.relative_to(ROOT)}:{line} imports {target}"


def test_the_base_needs_no_pymc():
    """Floor 0 is plain numpy/scipy/pandas: usable (and testable) without compiling a model."""
    for path in _sources("models/base"):
        for line, target, _ in _imports(ast.parse(path.read_text()), _module_name(path)):
            assert target.split(".")[0] not in ("pymc", "pytensor", "arviz", "nutpie"), \
                f"{path.relative_to(ROOT)}:{line} imports {target}"


def test_nothing_under_models_imports_matplotlib():
    bad = []
    for path in _sources("models"):
        src = path.read_text()
        for line, target, _ in _imports(ast.parse(src), _module_name(path)):
            if target.split(".")[0] == "matplotlib":
                bad.append(f"{path.relative_to(ROOT)}:{line}")
        if "matplotlib.use(" in src:
            bad.append(f"{path.relative_to(ROOT)}: sets a matplotlib backend")
    assert not bad, f"matplotlib under models/: {bad}"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_name_crosses_a_module_boundary():
    bad = []
    for path in _sources("models", "workflows", "benchmarks"):
        module = _module_name(path) if not path.is_relative_to(ROOT / "benchmarks") else "benchmarks"
        tree = ast.parse(path.read_text())
        project_aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
                    "models", "workflows"):
                for a in node.names:
                    if _private(a.name):
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {a.name} "
                                   f"from {node.module}")
                    project_aliases.add(a.asname or a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] in ("models", "workflows"):
                        project_aliases.add(a.asname or a.name.split(".")[0])
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                root = node.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in project_aliases:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} ({module}) reaches into "
                               f"{ast.unparse(node)}")
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


@pytest.mark.parametrize("folder", ["models", "workflows"])
def test_no_function_takes_more_than_eight_parameters(folder):
    bad = []
    for path in _sources(folder):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
                n = len(names) - (names[:1] in (["self"], ["cls"])) + bool(a.vararg) + bool(a.kwarg)
                if n > MAX_PARAMS:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n})")
    assert not bad, f"functions with more than {MAX_PARAMS} parameters: {bad}"
