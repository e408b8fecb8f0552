"""The package's layout in figures: modules at the top level, import arrows between aerecon's
modules, arrows that run back up the layers, and the longest functions.

Layers, lowest first: utils, audio, coding, data and models (side by side, neither imports the
other), training, then the top level (the commands and the public `load`). An arrow back up is an import
from a lower layer into a higher one (a function-level import counts too).

    python experiments/layout.py [--package aerecon] [--longest 5]
"""

import argparse
import ast
from pathlib import Path

LAYERS = {"utils": 0, "audio": 1, "coding": 2, "data": 3, "models": 3, "training": 4}
TOP = 5


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], TOP) if len(parts) > 1 else TOP


def imports(tree: ast.AST, module: str, package: str, is_package: bool) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == package}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] == package:
                found.add(base)
    return found


def resolve(target: str, modules: set[str]) -> str:
    while target not in modules and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default="aerecon")
    parser.add_argument("--longest", type=int, default=5)
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1] / args.package
    files = sorted(root.rglob("*.py"))
    trees = {module_name(f, root): (f, ast.parse(f.read_text())) for f in files}
    modules = set(trees)

    arrows, back_up, functions = set(), [], []
    for module, (path, tree) in trees.items():
        for target in imports(tree, module, args.package, path.name == "__init__.py"):
            target = resolve(target, modules)
            if target != module:
                arrows.add((module, target))
                if layer(target) > layer(module):
                    back_up.append((module, target))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{module}.{node.name}"))

    top = sorted(m for m in modules if m.count(".") == 1 and Path(trees[m][0]).name != "__init__.py")
    print(f"modules: {len(modules)}, at the top level: {len(top)} ({', '.join(m.split('.')[1] for m in top)})")
    print(f"import arrows between modules: {len(arrows)}; back up the layers: {len(back_up)}")
    for source, target in sorted(back_up):
        print(f"  {source} -> {target}")
    print("longest functions (lines):")
    for lines, name in sorted(functions, reverse=True)[: args.longest]:
        print(f"  {lines:4d}  {name}")


if __name__ == "__main__":
    main()
