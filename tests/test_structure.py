"""The package's shape: commands are siblings, lower floors (augmentation, the metrics, the run folder)
never import the floors and commands above them nor learn about the study, and no module imports itself
in a circle."""

import ast
from pathlib import Path

import handwriting_gan

PACKAGE = Path(handwriting_gan.__file__).parent
#: Each command, a module or a package of modules.
COMMANDS = (
    "handwriting_gan.train",
    "handwriting_gan.evaluate",
    "handwriting_gan.export",
    "handwriting_gan.study",
    "handwriting_gan.expand",
)
STUDY = "handwriting_gan.study"
#: Modules below the commands: they serve every command and may not know the study's files or names.
LOWER_FLOORS = ("handwriting_gan.runs", "handwriting_gan.metrics")
#: Floors below the commands, lowest first: each may import its own and those below it, never one above.
#: Classical augmentation's tuning is given the classifier's score by its caller; the metrics never read a
#: run folder (the run folder reads the classifier its config records).
FLOORS = ("handwriting_gan.augment", "handwriting_gan.metrics", "handwriting_gan.runs")


def imports() -> dict[str, set[str]]:
    """module -> the handwriting_gan modules it imports (at any depth of its code)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("handwriting_gan"):
                found.add(node.module)
                if node.module == "handwriting_gan":  # from handwriting_gan import study
                    found |= {f"handwriting_gan.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("handwriting_gan")}
        graph[module] = found
    return graph


def within(module: str, owner: str) -> bool:
    """`module` is `owner` or one of its submodules."""
    return module == owner or module.startswith(owner + ".")


def modules_of(graph: dict[str, set[str]], owner: str) -> list[str]:
    return [module for module in graph if within(module, owner)]


def test_the_structure_sees_every_module_of_the_study_package():
    graph = imports()
    study = modules_of(graph, STUDY)
    assert {f"{STUDY}.settings", f"{STUDY}.store", f"{STUDY}.steps", f"{STUDY}.training"} <= set(study)
    assert f"{STUDY}.settings" in graph[f"{STUDY}.steps"]  # the graph holds the package's own arrows


def test_no_command_imports_another():
    graph = imports()
    for command in COMMANDS:
        others = [other for other in COMMANDS if other != command]
        for module in modules_of(graph, command):
            wrong = {target for target in graph[module] for other in others if within(target, other)}
            assert not wrong, (module, wrong)


def test_a_floor_imports_nothing_above_it():
    graph = imports()
    for level, floor in enumerate(FLOORS):
        above = [*FLOORS[level + 1 :], *COMMANDS]
        modules = modules_of(graph, floor)
        assert modules, floor
        for module in modules:
            wrong = {target for target in graph[module] for upper in above if within(target, upper)}
            assert not wrong, (module, wrong)


def test_the_run_folder_and_the_metrics_do_not_know_the_study():
    graph = imports()
    for floor in LOWER_FLOORS:
        modules = modules_of(graph, floor)
        assert modules, floor
        for module in modules:
            assert not {t for t in graph[module] if within(t, STUDY)}, module
            path = PACKAGE.parent.joinpath(*module.split("."))
            source = (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text()
            # Not its name, nor its files (results.json, <out>/runs/): the study's runs record what the
            # lower floors need in their own config.
            assert "study" not in source.lower() and "results.json" not in source, module


def test_no_import_cycles():
    graph = imports()

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for target in graph.get(todo.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    cycles = [module for module in graph if module in reach(module)]
    assert not cycles, cycles
