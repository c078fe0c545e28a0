"""The package's shape: no import cycles, modules a reader can take in at once, one source for allowed values."""

import ast
import dataclasses
from pathlib import Path
from typing import Literal, get_args, get_origin, get_type_hints

import pytest

from unet_lib.config import RECIPES, TrainConfig, recipe
from unet_lib.data.cache import CACHE_MODES
from unet_lib.data.transforms import AUGMENTS
from unet_lib.errors import InputError
from unet_lib.losses import LOSSES
from unet_lib.model import BLOCKS

PACKAGE = Path(__file__).resolve().parent.parent / "unet_lib"
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """unet_lib modules that ``path`` imports when it runs (``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from pkg import module`
    return {name for name in found if name.startswith("unet_lib")}


def test_no_import_cycles():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imports_of(path) & set(modules) - {name} for name, path in modules.items()}
    # A module inside a package always runs the package's __init__ first: that edge is not a choice.
    graph = {name: {d for d in deps if not name.startswith(d + ".")} for name, deps in graph.items()}
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                cycle = path[path.index(dep) :] + [dep] if dep in path else [name, dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_modules_stay_short():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_literal_fields_are_checked_against_their_owners_registries():
    hints = get_type_hints(TrainConfig)
    allowed = {name: set(get_args(kind)) for name, kind in hints.items() if get_origin(kind) is Literal}
    assert allowed["block"] == set(BLOCKS)
    assert allowed["loss"] == set(LOSSES)
    assert allowed["augment"] == set(AUGMENTS)
    assert allowed["cache"] == set(CACHE_MODES)
    for name, values in allowed.items():
        with pytest.raises(InputError, match=f"^{name}: expected one of"):
            TrainConfig(**{name: "no-such-value"})
        for value in values:
            if name != "dataset":
                dataclasses.replace(TrainConfig(), **{name: value})  # every allowed value is accepted


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.2, 1.5])
def test_threshold_must_lie_strictly_between_0_and_1(threshold):
    with pytest.raises(InputError, match="^threshold: expected a probability strictly between 0 and 1"):
        TrainConfig(threshold=threshold)


def test_every_recipe_builds_and_the_quick_ones_are_small():
    for name in RECIPES:
        recipe(name)
    quick, city = recipe("quick"), recipe("cityscapes-quick")
    assert quick.dataset == "carvana" and city.dataset == "cityscapes" and city.num_classes == 19
    assert quick.image_size == (64, 96) and quick.features == (16, 32, 64, 128) and quick.num_epochs <= 5
    assert city.image_size == (64, 128) and city.features == (16, 32, 64, 128)


def test_no_module_imports_another_modules_private_names():
    private = [
        f"{module_name(path)}: from {node.module} import {alias.name}"
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("unet_lib")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert not private, f"private names imported across modules: {private}"
