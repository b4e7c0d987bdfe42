"""Package lines follow trust lines: who may import whom, checked from the source.

    blindpad  -> anything            (the launcher; names client and relay)
    client    -> crypto, wire        (never relay)
    relay     -> crypto, wire        (never client: it cannot read pads)
    wire      -> nothing of ours
    crypto    -> nothing of ours

Every ``.py`` file of these packages is parsed (never imported) and every
import it can make is collected: ``import x``, ``from x import y``, relative
imports, ``importlib.import_module("x")`` and ``__import__("x")`` with a
literal name, and the string module paths of lazy-import tables (a
module-level dict whose values name modules, like ``client._HOMES`` or
``blindpad.cli.COMMANDS``).  The subprocess tests check what importing a
package actually loads, third-party libraries included.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: package -> the packages of ours it may import (besides itself).
RULES: dict[str, frozenset[str]] = {
    "crypto": frozenset(),
    "wire": frozenset(),
    "client": frozenset({"crypto", "wire"}),
    "relay": frozenset({"crypto", "wire"}),
    "blindpad": frozenset({"crypto", "wire", "client", "relay"}),
}
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_IMPORT_CALLS = {"import_module", "__import__"}


@dataclasses.dataclass(frozen=True, slots=True)
class Import:
    """One module a source file can import, and where it says so."""

    path: Path
    line: int
    target: str


def _module_name(root: Path, path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """Absolute module of ``from <level dots><name> import ...`` inside ``module``."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, name] if name else base)


def _call_target(node: ast.Call, module: str, is_package: bool) -> str | None:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in _IMPORT_CALLS or not node.args:
        return None
    first = node.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    target = first.value
    if target.startswith("."):  # import_module(".x", package): relative to this package
        dots = len(target) - len(target.lstrip("."))
        return _resolve(module, is_package, dots, target.lstrip(".") or None)
    return target


def _table_targets(node: ast.Assign | ast.AnnAssign) -> list[tuple[int, str]]:
    """String module paths among the values of a module-level dict (a lazy-import table)."""
    if not isinstance(node.value, ast.Dict):
        return []
    found: list[tuple[int, str]] = []
    for key, value in zip(node.value.keys, node.value.values, strict=True):
        # ``**dict.fromkeys(names, "client.errors")``: the key is None; the names
        # list holds attribute names, the second argument the module.
        subtree = value.args[1:] if key is None and isinstance(value, ast.Call) else [value]
        for part in subtree:
            for leaf in ast.walk(part):
                if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str):
                    text = leaf.value
                    if _DOTTED.fullmatch(text) and text.split(".")[0] in RULES:
                        found.append((leaf.lineno, text))
    return found


def collect_imports(root: Path, path: Path) -> list[Import]:
    """Every module ``path`` (a file under ``root``) can import, by any of the means above."""
    module, is_package = _module_name(root, path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve(module, is_package, node.level, node.module)
                if node.level
                else node.module or ""
            )
            found.append((node.lineno, base))
        elif isinstance(node, ast.Call):
            target = _call_target(node, module, is_package)
            if target is not None:
                found.append((node.lineno, target))
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            found += _table_targets(node)
    return [Import(path, line, target) for line, target in found]


def violations(root: Path) -> list[str]:
    """Every import in ``root``'s packages that breaks :data:`RULES`, one line each."""
    problems: list[str] = []
    for package, allowed in RULES.items():
        for path in sorted((root / package).rglob("*.py")):
            for imp in collect_imports(root, path):
                top = imp.target.split(".")[0]
                if top in RULES and top != package and top not in allowed:
                    where = f"{imp.path.relative_to(root)}:{imp.line}"
                    problems.append(f"{where}: {package} must not import {imp.target}")
    return problems


def test_the_tree_keeps_its_import_rules() -> None:
    assert violations(ROOT) == []


def test_every_package_has_a_rule() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {pattern.removesuffix("*") for pattern in include} == set(RULES)


def test_the_collector_reads_lazy_tables_and_import_calls() -> None:
    def targets(relative: str) -> set[str]:
        return {imp.target for imp in collect_imports(ROOT, ROOT / relative)}

    assert {"client.pad", "client.errors", "client.events"} <= targets("client/__init__.py")
    assert {"relay.cli", "client.commands.cat"} <= targets("blindpad/cli.py")
    assert "js" in targets("client/browser.py")  # importlib.import_module("js")


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in RULES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("name", "text", "reported"),
    [
        ("client/a.py", "import relay\n", "client/a.py:1: client must not import relay"),
        (
            "client/b.py",
            'import importlib\n\nimportlib.import_module("relay.cli")\n',
            "client/b.py:3: client must not import relay.cli",
        ),
        ("relay/c.py", "from client import x\n", "relay/c.py:1: relay must not import client"),
        ("wire/d.py", "import client.pad\n", "wire/d.py:1: wire must not import client.pad"),
        ("crypto/e.py", "from wire import frames\n", "crypto/e.py:1: crypto must not import wire"),
        (
            "relay/sub/f.py",
            "from ...client import g\n",
            "relay/sub/f.py:1: relay must not import ",
        ),
        ("client/g.py", '__import__("relay")\n', "client/g.py:1: client must not import relay"),
        (
            "client/__init__.py",
            '_HOMES = {"Pad": "client.pad", **dict.fromkeys(["X"], "relay.hub")}\n',
            "client/__init__.py:1: client must not import relay.hub",
        ),
        (
            "wire/h.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from crypto import keys\n",
            "wire/h.py:3: wire must not import crypto",
        ),
    ],
)
def test_an_illegal_import_is_reported(
    tmp_path: Path, name: str, text: str, reported: str
) -> None:
    problems = violations(_tree(tmp_path, {name: text}))
    assert len(problems) == 1
    assert problems[0].startswith(reported)


def test_legal_imports_are_not_reported(tmp_path: Path) -> None:
    files = {
        "client/a.py": "import crypto\nfrom wire import frames\nfrom . import b\nimport json\n",
        "client/b.py": 'import importlib\nimportlib.import_module("client.a")\n',
        "relay/c.py": "from wire.codes import ErrorCode\nfrom .store import base\n",
        "blindpad/cli.py": 'COMMANDS = {"relay": ("relay.cli", "run"), "cat": ("client.c", "")}\n',
        "wire/d.py": 'import struct\nfrom wire import frames\nLOG = "blindpad.relay"\n',
    }
    assert violations(_tree(tmp_path, files)) == []


def _loaded_after(code: str) -> list[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def _tops(modules: list[str], names: set[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in names]


def test_import_client_stays_light() -> None:
    loaded = _loaded_after(
        "import client, client.session, client.pad\nfrom client import Pad, PadError, TextChanged"
    )
    heavy = {"relay", "blindpad", "websockets", "httpx", "nacl", "uvicorn", "starlette"}
    assert _tops(loaded, heavy | {"prometheus_client"}) == []


def test_the_launcher_and_relay_cli_load_no_relay_extra() -> None:
    """`blindpad relay` must be able to say "install blindpad[relay]" without them."""
    loaded = _loaded_after("import blindpad.cli, relay.cli, relay.edge.bundle")
    assert _tops(loaded, {"starlette", "uvicorn", "prometheus_client"}) == []


def test_the_relay_never_loads_the_client() -> None:
    loaded = _loaded_after("import relay.app, relay.cli, relay.edge.seed, relay.edge.web")
    assert _tops(loaded, {"client", "blindpad"}) == []


def test_wire_loads_nothing_of_ours() -> None:
    loaded = _loaded_after("import wire, wire.frames, wire.codes, wire.history, wire.errors")
    assert _tops(loaded, set(RULES) - {"wire"}) == []
