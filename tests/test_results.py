"""benchmarks/results/ and docs/results.md: every result names the commit and command it came from,
and the docs cite only results and scripts that are in the tree."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@pytest.mark.parametrize("table", sorted(RESULTS.glob("*.md")), ids=lambda p: p.name)
def test_every_result_names_its_commit_and_command(table):
    text = table.read_text()
    commit = re.search(r"(?:Measured at commit|committed in) ([0-9a-f]{7,40})", text)
    command = re.search(r"`python (benchmarks/\w+\.py)[^`]*`", text)
    assert commit and command, f"{table.name} names no commit or no command"
    assert (ROOT / command.group(1)).exists(), f"{table.name}: {command.group(1)} is not in the tree"
    record = json.loads(table.with_suffix(".json").read_text()) if table.with_suffix(".json").exists() else None
    if record is not None:
        assert record["provenance"]["commit"] == commit.group(1) and record["provenance"]["command"].startswith(f"python {command.group(1)}")


def test_the_docs_cite_only_results_and_scripts_in_the_tree():
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    cited = set(re.findall(r"benchmarks/(?:results/)?[\w]+\.(?:py|md|json)", text))
    assert cited and {c for c in cited if not (ROOT / c).exists()} == set()


def test_a_new_result_records_where_it_came_from():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import common
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    origin = common.provenance()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    if head.returncode == 0:
        assert origin["commit"] == head.stdout.strip()
    assert isinstance(origin["dirty"], bool) and origin["command"].startswith("python ")
    assert "openvino" in origin["packages"] and origin["machine"]
