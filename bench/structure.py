"""Prints figures about the shape of a package: files, import arrows between its modules,
import floors (longest chain of imports), cycles, the longest function and the largest class."""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, here: str, is_package: bool) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".") if is_package else here.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("package", nargs="?", default="bot", help="package folder (default: bot)")
    args = parser.parse_args()
    root = Path(args.package).resolve()
    files = sorted(p for p in root.rglob("*.py"))
    modules = {module_name(root, p): p for p in files}
    arrows: set[tuple[str, str]] = set()
    longest = ("", 0)
    largest = ("", 0, 0)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target in imported(tree, name, path.name == "__init__.py"):
            # an import of a.b.c counts as an arrow to the deepest module of ours it names
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                arrows.add((name, target))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > longest[1]:
                    longest = (f"{path.relative_to(root.parent)}:{node.name}", length)
            elif isinstance(node, ast.ClassDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                methods = sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in node.body)
                if length > largest[1]:
                    largest = (f"{path.relative_to(root.parent)}:{node.name}", length, methods)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for a, b in arrows:
        graph[a].add(b)
    floors: dict[str, int] = {}
    cycles: list[str] = []

    def floor(m: str, stack: tuple[str, ...]) -> int:
        if m in floors:
            return floors[m]
        if m in stack:
            cycles.append(" -> ".join(stack[stack.index(m):] + (m,)))
            return 0
        floors[m] = value = 1 + max((floor(n, stack + (m,)) for n in graph[m]), default=0)
        return value

    for m in modules:
        floor(m, ())
    code_files = [p for p in files if p.read_text(encoding="utf-8").strip()]
    print(f"package: {args.package}")
    print(f"python files: {len(files)} ({len(code_files)} not empty)")
    print(f"import arrows between them: {len(arrows)}")
    print(f"import floors: {max(floors.values(), default=0)}")
    print(f"import cycles: {len(cycles)}")
    for cycle in cycles:
        print(f"  {cycle}")
    print(f"longest function: {longest[0]} ({longest[1]} lines)")
    print(f"largest class: {largest[0]} ({largest[1]} lines, {largest[2]} methods)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
