"""The README's five-minute walk runs as written: its marked shell block, line by line, on synthetic
parts laid out as the README says (a folder of good images, new images in sub-folders, a labelled
MVTec-layout folder)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- tests/test_readme.py runs this block as written"


def walk_commands() -> list[str]:
    """The lines of the bash block right after the marker."""
    text = README.read_text()
    block = re.search(re.escape(MARKER) + r".*?-->\n```bash\n(.*?)```", text, re.S)
    assert block, f"README.md has no bash block after {MARKER!r}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_is_short_and_its_walk_names_only_adedge_commands():
    assert len(README.read_text().splitlines()) <= 250
    assert all(command.startswith("adedge ") for command in walk_commands())


@pytest.mark.trains
def test_the_readme_walk_runs_as_written(synthetic, tmp_path):
    (tmp_path / "bracket").symlink_to(synthetic / "train" / "good", target_is_directory=True)
    shutil.copytree(synthetic / "test", tmp_path / "new")
    (tmp_path / "labelled").symlink_to(synthetic, target_is_directory=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "XDG_STATE_HOME": str(tmp_path)}
    outputs = []
    for command in walk_commands():
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
        outputs.append(done.stdout)
    records = [json.loads(line) for out in outputs for line in out.splitlines() if line.startswith("{")]
    assert records and all(r["label"] in ("OK", "CHECK", "NG") and r["model"] == "bracket_dfm" for r in records)
    assert (tmp_path / "inspected" / "predictions.jsonl").is_file() and (tmp_path / "report" / "report.html").is_file()
