"""The layout's rules, as docs/development.md states them: imports go one way between the stages."""

import ast
import subprocess
import sys
from pathlib import Path

import adedge

PACKAGE = Path(adedge.__file__).parent


def _imports(folder: str) -> dict[str, set[str]]:
    """adedge modules imported by each file under adedge/FOLDER (function-level imports included)."""
    found = {}
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(PACKAGE))] = {n for n in names if n.startswith("adedge")}
    return found


def _offending(folder: str, forbidden: tuple[str, ...]) -> dict[str, set[str]]:
    return {file: bad for file, names in _imports(folder).items() if (bad := {n for n in names if n.startswith(forbidden)})}


def test_the_runtime_imports_neither_training_nor_export():
    assert _offending("runtime", ("adedge.train", "adedge.export")) == {}


def test_training_and_export_do_not_import_the_runtime():
    assert _offending("train", ("adedge.runtime",)) == {} and _offending("export", ("adedge.runtime",)) == {}


def test_inside_the_runtime_inference_imports_no_line_evaluation_or_serving():
    assert _offending("runtime/inference", ("adedge.runtime.line", "adedge.runtime.evaluation", "adedge.runtime.serving")) == {}
    assert _offending("runtime/line", ("adedge.runtime.evaluation", "adedge.runtime.serving")) == {}


def _loaded_by(module: str) -> set[str]:
    """The modules importing MODULE loads, in a fresh interpreter: what a package's __init__ pulls in
    counts too, which reading the import statements would miss."""
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())


def _within(modules: set[str], prefixes: tuple[str, ...]) -> set[str]:
    return {m for m in modules if m.startswith(prefixes)}


def test_at_import_time_the_runtime_loads_no_torch_and_the_verdict_rule_no_line_io():
    assert _within(_loaded_by("adedge.runtime"), ("torch", "adedge.train", "adedge.export")) == set()
    assert _within(_loaded_by("adedge.runtime.inference.verdict"), ("adedge.runtime.line", "cv2", "torch", "openvino")) == set()
    assert _within(_loaded_by("adedge.runtime.inference.model"), ("adedge.runtime.line", "adedge.runtime.serving", "torch")) == set()
    assert _within(_loaded_by("adedge.cli"), ("torch",)) == set()  # predict, eval and bench start without torch



def test_importing_the_server_changes_neither_the_command_line_nor_the_environment():
    # OpenCV sets LD_LIBRARY_PATH when imported (the runtime loads it anyway): the snapshot follows it
    code = ("import os, sys, cv2; argv, environ = list(sys.argv), dict(os.environ); import adedge.runtime.serving.server; "
            "assert sys.argv == argv and dict(os.environ) == environ")
    subprocess.run([sys.executable, "-c", code, "serve", "--mode", "latency", "--port", "0"], check=True)
