"""The layers of docs/architecture.md, enforced: a module imports only modules of its own layer or of
the layers below it (run-time imports, lazy ones inside functions included; type-only ones left out).

A module belongs to the layer of the longest prefix that names it, so ``hipo.train.algorithm`` is
pure while the rest of ``hipo.train`` is the train layer.
"""

import ast
import re

from tests.unit.test_import_graph import ROOT, _imports, import_graph

# Lowest first. Each entry: (layer, the module prefixes in it).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("pure", ("hipo.template", "hipo.train.algorithm")),
    ("base", ("hipo", "hipo.config", "hipo.storage")),
    ("tasks", ("hipo.tasks",)),
    ("models", ("hipo.models",)),
    ("engines", ("hipo.engines",)),
    ("data", ("hipo.data",)),
    ("quality", ("hipo.quality",)),
    ("registry", ("hipo.registry",)),
    ("train", ("hipo.train",)),
    ("evaluate", ("hipo.evaluate",)),
    ("launch", ("hipo.launch",)),
    ("steps", ("hipo.pipeline",)),
    ("components", ("components",)),
    ("pipelines", ("pipelines",)),
    ("local run", ("hipo.pipeline.run",)),
    ("remote", ("hipo.remote",)),
    ("cli", ("hipo.cli",)),
]
# Upward imports that are allowed, with the reason. The config checks names against the two
# registries, which import nothing above the pure layer at import time (asserted below).
EXCEPTIONS = {
    ("hipo.config", "hipo.engines.registry"),
    ("hipo.config", "hipo.train.registry"),
}
NAME_REGISTRIES = ("hipo.engines.registry", "hipo.train.registry")


def layer_of(module: str) -> int:
    """The index in LAYERS of the layer whose longest prefix names ``module``."""
    best, length = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = index, len(prefix)
    if best < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")
    return best


def crossings(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a higher layer, as "importer (layer) -> imported (layer)"."""
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if layer_of(target) > layer_of(module) and (module, target) not in EXCEPTIONS:
                found.append(
                    f"{module} ({LAYERS[layer_of(module)][0]}) -> {target} ({LAYERS[layer_of(target)][0]})"
                )
    return found


def test_no_import_crosses_the_layers():
    assert crossings(import_graph()) == []


def test_an_upward_import_is_caught():
    graph = {"hipo.train.rl": {"hipo.pipeline.steps"}, "hipo.pipeline.steps": set()}
    assert crossings(graph) == ["hipo.train.rl (train) -> hipo.pipeline.steps (steps)"]


def test_the_pure_modules_import_nothing_of_the_project():
    graph = import_graph()
    for module in LAYERS[0][1]:
        assert graph[module] == set(), f"{module} must stay pure: it imports {graph[module]}"


def test_the_name_registries_the_config_reads_stay_light():
    graph = import_graph()
    for registry in NAME_REGISTRIES:
        heavy = {t for t in graph[registry] if layer_of(t) > 1 and t not in ("hipo.train",)}
        assert heavy == set(), f"{registry} imports {heavy}: the config imports it, so it must stay light"


def test_every_module_has_a_layer_and_no_loose_module_sits_at_the_root():
    graph = import_graph()
    for module in graph:
        layer_of(module)
    loose = sorted(
        m
        for m in graph
        if m.count(".") == 1 and m.startswith("hipo.") and m not in ("hipo.config", "hipo.template")
    )
    packages = {p.parent.name for p in (ROOT / "hipo").glob("*/__init__.py")}
    assert [m for m in loose if m.split(".")[1] not in packages] == []


def test_bench_never_imports_the_tests():
    for path in sorted((ROOT / "bench").rglob("*.py")):
        imported = _imports(ast.parse(path.read_text(encoding="utf-8")), f"bench.{path.stem}", False)
        assert not any(name == "tests" or name.startswith("tests.") for name in imported), path.name


def test_the_architecture_document_lists_these_layers_in_order():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| ([a-z ]+) \| (.+?) \|", text, flags=re.M)
    documented = [(name, tuple(re.findall(r"`([\w.]+)`", modules))) for _, name, modules in rows]
    assert documented == LAYERS
