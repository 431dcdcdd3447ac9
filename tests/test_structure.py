"""The package's shape: commands are siblings, and no module imports itself in a circle."""

import ast
from pathlib import Path

import handwriting_gan

PACKAGE = Path(handwriting_gan.__file__).parent
COMMANDS = (
    "handwriting_gan.train",
    "handwriting_gan.evaluate",
    "handwriting_gan.export",
    "handwriting_gan.study",
)


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
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("handwriting_gan")}
        graph[module] = found
    return graph


def test_no_command_imports_another():
    graph = imports()
    for command in COMMANDS:
        others = set(COMMANDS) - {command}
        assert not graph[command] & others, (command, graph[command] & others)


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
