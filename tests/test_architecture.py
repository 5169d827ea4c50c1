"""The layers of src/cvgr (docs/architecture.md), enforced: every import, at module level or
inside a function, goes to the module's own layer or one below it, and no module takes
another module's private (`_`-prefixed) names."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A module belongs to the layer of the longest name below that is itself or one
# of its packages; "cvgr" alone is the package's face (`import cvgr`), at the top.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["cvgr.version", "cvgr.errors", "cvgr.io", "cvgr.names", "cvgr.paper",
                    "cvgr.rng", "cvgr.progress", "cvgr.devices", "cvgr.markdown",
                    "cvgr.options"]),
    ("complex layers", ["cvgr.nn"]),
    ("models and data", ["cvgr.models", "cvgr.data"]),
    ("attacks and defenses", ["cvgr.attacks", "cvgr.defenses"]),
    ("training settings and checkpoints", ["cvgr.train.config", "cvgr.checkpoint"]),
    ("the zoo's catalogue", ["cvgr.zoo.catalogue"]),
    ("training and cvgr.load", ["cvgr.train", "cvgr.loading"]),
    ("evaluation", ["cvgr.evaluate"]),
    ("benchmark and zoo", ["cvgr.benchmarking", "cvgr.zoo"]),
    ("experiments", ["cvgr.experiments"]),
    ("face and command line", ["cvgr", "cvgr.cli", "cvgr.__main__"]),
]

# Imports allowed against the rules, each with its reason. Empty: keep it so.
ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (length of the matching name, layer)
    for i, (_, names) in enumerate(LAYERS):
        for n in names:
            hit = module == n or (n != "cvgr" and module.startswith(n + "."))
            if hit and (best is None or len(n) > best[0]):
                best = (len(n), i)
    return None if best is None else best[1]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def imports(path: Path, module: str, known: set[str]) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every cvgr import in the file, and
    for every private attribute read through a name bound to an imported cvgr module."""
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    out: list[tuple[str, list[str], int]] = []
    bound: dict[str, str] = {}  # local name -> the cvgr module it names
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "cvgr":
                    out.append((a.name, [], node.lineno))
                    bound[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            if base.split(".")[0] != "cvgr":
                continue
            for a in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{base}.{a.name}"
                if sub in known:
                    out.append((sub, [], node.lineno))
                    bound[a.asname or a.name] = sub
                else:
                    out.append((base, [a.name], node.lineno))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in bound and _private(node.attr):
            out.append((bound[node.value.id], [node.attr], node.lineno))
    return out


def violations(src: Path = SRC) -> list[str]:
    files = sorted(src.joinpath("cvgr").rglob("*.py"))
    known = {module_name(p, src) for p in files}
    found = []
    for path in files:
        me = module_name(path, src)
        mine = layer_of(me)
        if mine is None:
            found.append(f"{me}: in no layer; give it one in tests/test_architecture.py and "
                         "docs/architecture.md")
            continue
        for target, names, line in imports(path, me, known):
            where = f"{me}:{line}"
            if (me, target) in ALLOWED:
                continue
            theirs = layer_of(target)
            if theirs is not None and theirs > mine:
                found.append(f"{where} imports {target} ({LAYERS[theirs][0]}) from "
                             f"{LAYERS[mine][0]}, a lower layer")
            for n in names:
                if _private(n):
                    found.append(f"{where} takes the private name {n} of {target}")
            parts = target.split(".")
            for i, part in enumerate(parts):  # a private module only from inside its package
                package = ".".join(parts[:i])
                if _private(part) and me != package and not me.startswith(package + "."):
                    found.append(f"{where} imports the private module {target}")
    return found


def test_every_import_goes_down_and_takes_no_private_name():
    assert violations() == []


def test_every_layer_names_modules_that_exist():
    known = {module_name(p) for p in SRC.joinpath("cvgr").rglob("*.py")}
    for _, names in LAYERS:
        for n in names:
            assert n in known, f"{n} is in a layer but is not a module of src/cvgr"


def test_the_docs_show_every_layer():
    text = (SRC.parent / "docs" / "architecture.md").read_text()
    for _, names in LAYERS:
        for n in names:
            assert f"`{n}`" in text, f"docs/architecture.md does not place {n}"


def test_one_definition_each_of_record_of_and_attacks():
    """One `record_of` (cvgr.checkpoint) and one `ATTACKS` (cvgr.attacks.registry): no second module
    defines a name of its own under either."""
    homes: dict[str, list[str]] = {"record_of": [], "ATTACKS": []}
    for path in sorted(SRC.joinpath("cvgr").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            names = [node.name] if isinstance(node, ast.FunctionDef | ast.ClassDef) else \
                [t.id for t in getattr(node, "targets", [getattr(node, "target", None)])
                 if isinstance(t, ast.Name)]
            for n in names:
                if n in homes:
                    homes[n].append(module_name(path))
    assert homes == {"record_of": ["cvgr.checkpoint"], "ATTACKS": ["cvgr.attacks.registry"]}


def logic_in_inits(src: Path = SRC) -> list[str]:
    """Statements in package `__init__.py` files other than the docstring, imports and
    `__all__`: a package's face only re-exports what its modules define."""
    found = []
    for path in sorted(src.joinpath("cvgr").rglob("__init__.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # the docstring
            if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] \
                    == ["__all__"]:
                continue
            found.append(f"{module_name(path, src)}:{node.lineno}")
    return found


def test_package_inits_hold_no_logic():
    assert logic_in_inits() == []


def test_the_init_check_finds_logic(tmp_path):
    pkg = tmp_path / "cvgr" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "cvgr" / "__init__.py").write_text('"""Doc."""\nfrom x import y\n__all__ = ["y"]\n')
    (pkg / "__init__.py").write_text("import os\nTABLE = {}\n\ndef f():\n    pass\n")
    assert logic_in_inits(tmp_path) == ["cvgr.sub:2", "cvgr.sub:4"]


def test_the_check_finds_upward_imports_and_private_names(tmp_path):
    pkg = tmp_path / "cvgr"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "io.py").write_text("def f():\n    from cvgr.zoo import weights_file\n")
    (pkg / "zoo.py").write_text("from cvgr.io import _helper\nimport cvgr.cli._common\n"
                                "from cvgr import io as files\nfiles._umask()\n")
    (pkg / "cli" / "__init__.py").write_text("from cvgr.cli._common import x\n")
    (pkg / "cli" / "_common.py").write_text("from cvgr import io\n")
    (pkg / "stray.py").write_text("")
    found = violations(tmp_path)
    assert any(v.startswith("cvgr.io:2 imports cvgr.zoo") for v in found), found
    assert "cvgr.zoo:1 takes the private name _helper of cvgr.io" in found
    assert "cvgr.zoo:2 imports the private module cvgr.cli._common" in found
    assert "cvgr.zoo:4 takes the private name _umask of cvgr.io" in found
    assert any(v.startswith("cvgr.stray: in no layer") for v in found)
    assert not any(v.startswith("cvgr.cli") for v in found), found  # inside its own package
    assert any(v.startswith("cvgr.zoo:2 imports cvgr.cli._common (face") for v in found)
    assert len(found) == 6


MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def too_long(src: Path = SRC) -> set[str]:
    found = set()
    for path in sorted(src.joinpath("cvgr").rglob("*.py")):
        text, me = path.read_text(), module_name(path, src)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.add(me)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) \
                    and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                found.add(f"{me}:{node.name}")
    return found


def test_no_function_over_60_lines_and_no_module_over_400():
    assert too_long() == set(), "split these where a reader gains from it"


def test_the_size_check_finds_long_functions_and_modules(tmp_path):
    pkg = tmp_path / "cvgr"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    def body(n: int) -> str:
        return "".join(f"    x{i} = {i}\n" for i in range(n))

    (pkg / "big.py").write_text("def f():\n" + body(MAX_FUNCTION_LINES) + "\n" * MAX_MODULE_LINES)
    (pkg / "small.py").write_text("def g():\n" + body(MAX_FUNCTION_LINES - 1))  # 60 lines
    assert too_long(tmp_path) == {"cvgr.big", "cvgr.big:f"}
