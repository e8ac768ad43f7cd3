"""The packages follow the data flow, and no import goes up it: run_kit (plumbing) < image_sets (data) < search_spaces
(genotypes) < supernet (networks, search, retraining, the registries) < meta (tasks, meta-model, teachers) <
evaluation (reports) < train.py and benchmarks/. Within a package, modules import each other without a circle. And
no code outside the registry branches on which search space a run uses."""
import ast
from collections import defaultdict
from pathlib import Path

from supernet.spaces import SPACES
from tests.helpers import ROOT

LAYERS = ["run_kit", "image_sets", "search_spaces", "supernet", "meta", "evaluation"]
TOP = ["train.py", "benchmarks"]


def _modules() -> dict[str, Path]:
    out = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).glob("*.py")):
            out[f"{package}.{path.stem}" if path.stem != "__init__" else package] = path
    return out


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """(imported module, line) of every import in the file, function-level ones included, relative ones resolved;
    those under `if TYPE_CHECKING:` (type hints only, never run) left out."""
    package = module if path.stem == "__init__" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    hints_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If)
                  and getattr(node.test, "id", None) == "TYPE_CHECKING" for inner in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in hints_only:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _rank(name: str) -> int | None:
    top = name.split(".")[0]
    return LAYERS.index(top) if top in LAYERS else None


def test_no_import_goes_up_the_data_flow():
    upward = []
    for module, path in _modules().items():
        own = _rank(module)
        for imported, line in _imports(path, module):
            rank = _rank(imported)
            if rank is not None and rank > own:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert not upward, "\n".join(upward)


def test_no_module_import_circle():
    modules = _modules()
    graph = defaultdict(set)
    for module, path in modules.items():
        for imported, _ in _imports(path, module):
            if imported in modules and imported != module:
                graph[module].add(imported)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The test above is not vacuous: a module of supernet/ importing meta/ is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from meta.model import TaskDARTS\n\ndef f():\n    from evaluation import compare\n")
    found = [name for name, _ in _imports(bad, "supernet.bad")]
    assert any(_rank(name) > _rank("supernet.bad") for name in found)
    relative = tmp_path / "rel.py"
    relative.write_text("from .spaces import get_space\nfrom ..meta import model\n")
    assert {"supernet.spaces", "meta.model"} <= {name for name, _ in _imports(relative, "supernet.rel")}


def _space_name_branches(path: Path) -> list[int]:
    """Lines that compare something with a registered space's name or key a dict by one."""
    names = set(SPACES)
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in names for o in operands):
                lines.append(node.lineno)
        elif isinstance(node, ast.Dict):
            if any(isinstance(k, ast.Constant) and k.value in names for k in node.keys):
                lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value in names:
            lines.append(node.lineno)
    return lines


def test_no_code_outside_the_registry_branches_on_a_space_name():
    files = [path for package in LAYERS for path in (ROOT / package).glob("*.py")] + [ROOT / "train.py"]
    found = [f"{path.relative_to(ROOT)}:{line}" for path in files for line in _space_name_branches(path)
             if path.relative_to(ROOT).as_posix() != "supernet/spaces.py"]
    assert not found, "\n".join(found)


def test_the_branch_checker_sees_a_branch(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('def f(space):\n    if space.name == "darts":\n        return 1\n    return {"nb201": 2}["nb201"]\n')
    assert _space_name_branches(bad) == [2, 4, 4]


def test_no_benchmark_imports_another():
    """benchmarks/ are thin scripts over the library: what two of them share lives in a package, never in a script
    that the other imports."""
    scripts = {path.stem for path in (ROOT / "benchmarks").glob("*.py")}
    sibling = [f"{path.name}:{line} imports {imported}" for path in sorted((ROOT / "benchmarks").glob("*.py"))
               for imported, line in _imports(path, f"benchmarks.{path.stem}") if imported.split(".")[0] in scripts]
    assert not sibling, "\n".join(sibling)
