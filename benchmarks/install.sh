#!/usr/bin/env bash
# The line-side (base) install: time and size of `pip install .` (no extras) into a fresh venv, and
# what a runtime-only install answers to `adedge train`.
#   bash benchmarks/install.sh [SOURCE_DIR]      (default: this checkout; pip's cache as it is)
set -euo pipefail
src="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
start=$(date +%s.%N)
"$scratch/venv/bin/pip" install --quiet --disable-pip-version-check -c "$src/constraints.txt" "$src" 2> >(grep -v "is ignored" >&2)
end=$(date +%s.%N)
echo "install of $src: $(python3 -c "print(round($end - $start, 1))") s; venv $(du -sm "$scratch/venv" | cut -f1) MB"
echo "largest packages (MB):"
du -sm "$scratch"/venv/lib/python3*/site-packages/* | sort -rn | head -8
echo "adedge train on this install:"
"$scratch/venv/bin/adedge" train --data "$scratch" --out "$scratch/run" 2>&1 | tail -3 || true
