"""The package's architecture rules, checked on the exported sources (serl/**/*.py):

* layers: core < market < agent < design < loop < app; a module imports only from its own layer or below,
  never upward, and the import graph (lazy imports inside functions included) has no cycles;
* the sandbox (stage 2, process isolation) and its stage-1 checks import nothing from serl but `serl.core`
  (and each other) and name no component kind;
* no name starting with `_` is imported from another serl module;
* no component-kind name is written as a string outside the kind registry and the component modules;
* no library module is longer than the limit (the generated `_modidx.py` aside).
"""
import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "serl"
LAYERS = ["core", "market", "agent", "design", "loop", "app"]
MAX_LINES = 650                      # "about 600" (the issue); the generated _modidx.py aside
KIND_NAMES = ("reward", "network", "communication", "profiles", "scenario")
ISOLATION = {"serl.design.sandbox", "serl.design.static_check", "serl.design.isolation", "serl.design.executor"}       # the sandbox's modules (stage 2 and stage 1)


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        if p.name == "_modidx.py": continue
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


MODS = modules()


def imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    "(imported serl module, names) for every import in the module, at any depth (lazy imports included)."
    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
            if not base.startswith("serl"): continue
            names = [a.name for a in node.names]
            subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODS]    # `from serl.market import data`
            out += [(s, []) for s in subs] + ([(base, [n for n in names if f"{base}.{n}" not in MODS])] if len(subs) < len(names) else [])
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("serl")]
    return [(m, ns) for m, ns in out if m in MODS and m != "serl"]


def layer(name: str) -> int:
    parts = name.split(".")
    if len(parts) == 1: return -1                       # serl/__init__.py
    return LAYERS.index(parts[1])


GRAPH = {m: imports(m, p) for m, p in MODS.items()}


def test_every_module_has_a_layer():
    for m in MODS:
        if m == "serl": continue
        assert m.split(".")[1] in LAYERS, f"{m}: not in a layer ({LAYERS})"


def test_no_upward_imports():
    bad = [f"{m} ({LAYERS[layer(m)]}) imports {t} ({LAYERS[layer(t)]})"
           for m, deps in GRAPH.items() for t, _ in deps if m != "serl" and layer(t) > layer(m)]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    state, stack = {}, []
    def visit(m):
        state[m] = 1; stack.append(m)
        for t, _ in GRAPH[m]:
            if t == m: continue
            if state.get(t) == 1: pytest.fail("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state: visit(t)
        state[m] = 2; stack.pop()
    for m in GRAPH:
        if m not in state: visit(m)


def test_no_private_names_across_modules():
    bad = [f"{m} imports {n} from {t}" for m, deps in GRAPH.items() for t, ns in deps for n in ns
           if t != m and n.startswith("_") and not n.startswith("__")]
    assert not bad, "\n".join(bad)


def test_the_sandbox_knows_no_kinds():
    for m in ISOLATION & set(MODS):
        deps = {t for t, _ in GRAPH[m]} - ISOLATION - {"serl.core", "serl"}
        assert not deps, f"{m} imports {sorted(deps)}: the sandbox may import only serl.core"
        src = MODS[m].read_text()
        named = [k for k in KIND_NAMES if re.search(rf"[\"']{k}[\"']", src)]
        assert not named, f"{m} names component kinds {named}"


def test_kind_names_only_in_the_registry_and_components():
    # the attack catalogue is test data: components of given kinds that try to escape (a label per attack)
    allowed = {"serl.design.kinds", "serl.design.attacks"} | {m for m in MODS if m.startswith("serl.design.components.")}
    bad = []
    for m, p in MODS.items():
        if m in allowed: continue
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if line.lstrip().startswith("#"): continue
            for k in KIND_NAMES:
                if re.search(rf"[\"']{k}[\"']", line): bad.append(f"{p.relative_to(PKG.parent)}:{i}: {line.strip()[:100]}")
    assert not bad, "kind names outside the registry:\n" + "\n".join(bad)


def test_modules_are_short():
    long = {m: n for m, p in MODS.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
