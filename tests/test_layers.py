"""The package's import graph: no import points up the layers, and there is no import cycle.

Layers, lowest first (a module may import its own layer's modules and lower layers only):
  0 foundation   errors, config, fileio, limits, machine
  1 data         finscribe.data (schema, formatters, dataset building, importers)
  2 synthetic    finscribe.synthetic (uses the data contract)
  3 core         model, checkpoint, prompting, ingest, model_card (load/save a model and read its layout, prompts, documents in, provenance)
  4 generation   inference, repetition, constrained, engine_vllm (the same Predictions from a vLLM server)
  5 eval         finscribe.eval (metrics, reports; runs the model through inference)
  6 mining       finscribe.mining (classifies with eval, replays for training)
  7 training     finscribe.training (uses everything below; nothing below imports it)
  8 deploy       finscribe.deploy (quantize, service, server)
  9 application  quickstart, cli
Every import is read from the source (ast), including imports inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "finscribe"

LAYERS = {
    "finscribe": 0, "finscribe.errors": 0, "finscribe.config": 0, "finscribe.fileio": 0, "finscribe.limits": 0,
    "finscribe.machine": 0,
    "finscribe.data": 1,
    "finscribe.synthetic": 2,
    "finscribe.model": 3, "finscribe.checkpoint": 3, "finscribe.prompting": 3, "finscribe.ingest": 3,
    "finscribe.detection": 3, "finscribe.detect": 3, "finscribe.detect_config": 3, "finscribe.model_card": 3,
    "finscribe.inference": 4, "finscribe.repetition": 4, "finscribe.constrained": 4, "finscribe.generation_args": 4,
    "finscribe.engine_vllm": 4, "finscribe.vllm_server": 4,
    "finscribe.eval": 5,
    "finscribe.mining": 6,
    "finscribe.training": 7,
    "finscribe.deploy": 8,
    "finscribe.quickstart": 9, "finscribe.quickstart_config": 9, "finscribe.cli": 9,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of the longest LAYERS prefix of `module`."""
    best = max((name for name in LAYERS if module == name or module.startswith(name + ".")), key=len)
    return LAYERS[best]


def _is_main_guard(node: ast.AST) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def imports_of(path: Path) -> set[str]:
    """finscribe modules imported anywhere in the file except under `if __name__ == "__main__":`
    (a module's command-line entry point is the application layer, it may call finscribe.cli.run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    tree.body = [node for node in tree.body if not _is_main_guard(node)]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("finscribe"):
            found.add(node.module)
            # `from finscribe.eval import charts` imports the submodule finscribe.eval.charts
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if (PACKAGE.parent / f"{node.module}.{a.name}".replace(".", "/")).with_suffix(".py").is_file())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("finscribe"))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules} for name, path in modules.items()}


def test_every_module_has_a_layer():
    for module in import_graph():
        layer_of(module)  # raises ValueError (max of nothing) for a module outside every layer


def test_no_import_points_up_the_layers():
    upward = [f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
              for module, targets in import_graph().items() for target in targets
              if layer_of(target) > layer_of(module)]
    assert not upward, "imports pointing up the layers:\n" + "\n".join(sorted(upward))


def test_only_training_cli_and_quickstart_import_training():
    outside = [f"{module} imports {target}" for module, targets in import_graph().items() for target in targets
               if target.startswith("finscribe.training") and not module.startswith("finscribe.training")
               and module not in ("finscribe.cli", "finscribe.quickstart")]
    assert not outside, "\n".join(sorted(outside))


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_the_checker_sees_an_upward_import(tmp_path):
    """The test above can fail: an eval module importing training is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from finscribe.training.train import train\n")
    assert imports_of(bad) == {"finscribe.training.train"}
    assert layer_of("finscribe.training.train") > layer_of("finscribe.eval.report")
