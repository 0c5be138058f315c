"""ARCHITECTURE.md's import rules, checked against the code's own imports (an ast scan)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Part name -> layer, as ARCHITECTURE.md's table gives them.
LAYERS = {
    "cluster": 1,
    "daemon": 2,  # the package face: __version__
    "clock": 2,
    "log": 2,
    "systemd": 2,
    "metrics": 2,
    "_speedups": 2,
    "thread_limits": 2,
    "gocompat": 3,
    "loop_monitor": 3,  # the loop-pause probe: reports through metrics' registry
    "options": 4,
    "alert": 5,
    "matcher": 5,
    "timeinterval": 5,
    "store": 6,
    "config": 6,
    "template": 6,
    "eventrules": 6,  # kube-events / kube-auditing rule files and their condition language
    "silence": 7,
    "nflog": 7,
    "inhibit": 7,
    "persist": 7,
    "notify": 8,
    "dispatch": 9,
    "sources": 9,
    "history": 9,
    "ha": 10,
    "tenancy": 10,  # the tenancy file, identities, resolver, tenant configs, limits
    "api": 11,
    "instance": 11,
    "ui": 11.5,  # the web UI's pages: on top of api/, below the process shell that wires them
    "app": 12,
    "instances": 12,  # the map of tenant instances and the fan-out of the global intake
    "ctl": 12,
    "cli": 13,
    "__main__": 14,
}

#: (importing part, imported module prefix) pairs the table's exceptions forbid.
FORBIDDEN = [
    ("api", "daemon.instance"),
    ("api", "daemon.ha"),
    ("api", "daemon.app"),
    ("ha", "daemon.notify"),
    ("ha", "daemon.dispatch"),
    ("ha", "daemon.sources"),
    ("template", "daemon.notify"),
]

#: What tocsinctl may import above layer 6: the pure route tree, for ``config routes``,
#: and the pure cron of recurring silences, for ``import notification-manager``.
CTL_EXTRA = {"daemon.dispatch.route", "daemon.silence.recurring"}

#: Modules ARCHITECTURE.md calls pure: no trio, quart or hypercorn.
PURE = [
    "daemon.alert",
    "daemon.matcher",
    "daemon.store",
    "daemon.timeinterval",
    "daemon.inhibit",
    "daemon.dispatch.route",
    "daemon.notify.dedup",
    "daemon.silence.model",
    "daemon.silence.codec",
    "daemon.silence.recurring",
    "daemon.silence.windows",
    "daemon.nflog.state",
    "daemon.nflog.codec",
    "daemon.config",
    "daemon.template",
    "daemon.tenancy.tenants",
    "daemon.tenancy.identity",
    "daemon.tenancy.limits",
    "daemon.notify.ratelimit",
    "daemon.dispatch.group_limit",
    "daemon.eventrules",
    "daemon.sources.kubeevents",
    "daemon.sources.production",
    "daemon.sources.resolve",
    "daemon.sources.steps",
    "daemon.api.framing",
    "daemon.api.wire",
]
SHELL_PACKAGES = ("trio", "quart", "quart_trio", "hypercorn")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, at any depth (lazy imports in functions count)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            # ``from daemon import metrics`` imports the module daemon.metrics.
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def product_modules() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    files = [*ROOT.joinpath("daemon").rglob("*.py"), *ROOT.joinpath("cluster").rglob("*.py")]
    names = {module_name(f): f for f in files}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        graph[name] = {m for m in imports_of(path) if m in names and m != name}
    return graph


def part_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "cluster":
        return "cluster"
    return parts[1] if len(parts) > 1 else "daemon"


GRAPH = product_modules()


def test_every_part_has_a_layer() -> None:
    """Every module of daemon/ and cluster/ belongs to a part of the table."""
    assert {part_of(m) for m in GRAPH} <= set(LAYERS)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_follow_the_layers(module: str) -> None:
    """A module imports only its own part or parts of lower layers, minus the exceptions."""
    part = part_of(module)
    wrong = []
    for imported in sorted(GRAPH[module]):
        other = part_of(imported)
        if other == part:
            continue
        if LAYERS[other] >= LAYERS[part]:
            if not (part == "instance" and imported == "daemon.api.backend") and not (
                part == "app" and imported == "daemon.instances"
            ):
                wrong.append(f"{imported} (layer {LAYERS[other]})")
        if any(part == p and imported.startswith(prefix) for p, prefix in FORBIDDEN):
            wrong.append(f"{imported} (forbidden for {part})")
        if part == "ctl" and LAYERS[other] > LAYERS["template"] and imported not in CTL_EXTRA:
            wrong.append(f"{imported} (ctl talks to the daemon over HTTP)")
    assert not wrong, f"{module} (layer {LAYERS[part]}) imports " + ", ".join(wrong)


def test_cluster_never_imports_daemon() -> None:
    """cluster/ is a library: nothing in it imports daemon/."""
    assert not [
        (m, i) for m in GRAPH if m.startswith("cluster") for i in GRAPH[m] if i.startswith("daemon")
    ]


def test_no_import_circles() -> None:
    """No chain of imports leads from a module back to itself."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(GRAPH[module]):
            if state.get(imported) == 1:
                circles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_pure_modules_import_no_shell() -> None:
    """The modules ARCHITECTURE.md calls pure import neither trio nor the web stack."""
    wrong = []
    for module in GRAPH:
        if not any(module == p or module.startswith(p + ".") for p in PURE):
            continue
        path = ROOT / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = ROOT / module.replace(".", "/") / "__init__.py"
        shells = {i.split(".")[0] for i in imports_of(path)} & set(SHELL_PACKAGES)
        if shells:
            wrong.append(f"{module}: {sorted(shells)}")
    assert not wrong
