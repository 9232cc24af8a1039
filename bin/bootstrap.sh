# shellcheck shell=bash
# Sourced by bin/iff and bin/test: make sure .venv exists with Python >= 3.12 and iff installed
# (editable, with test extras). Re-installs only when pyproject.toml changes.
set -euo pipefail
IFF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IFF_VENV="$IFF_ROOT/.venv"

_iff_find_python() {
  local c v
  for c in python3.12 python3.13 python3; do
    if command -v "$c" >/dev/null 2>&1 &&
       (cd "$IFF_ROOT" && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))') 2>/dev/null; then
      (cd "$IFF_ROOT" && "$c" -c 'import sys; print(sys.executable)'); return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])' | sort -V); do
      echo "$(pyenv root)/versions/$v/bin/python"; return 0
    done
  fi
  echo "iff needs Python >= 3.12 (install it, e.g. with pyenv)" >&2
  return 1
}

_iff_stamp="$(sha256sum "$IFF_ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -x "$IFF_VENV/bin/python" ] || [ "$(cat "$IFF_VENV/.iff-installed" 2>/dev/null)" != "$_iff_stamp" ]; then
  echo "iff: setting up $IFF_VENV (first run, takes a minute)..." >&2
  [ -x "$IFF_VENV/bin/python" ] || "$(_iff_find_python)" -m venv "$IFF_VENV"
  "$IFF_VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
  "$IFF_VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$IFF_ROOT[test]" >&2
  echo "$_iff_stamp" > "$IFF_VENV/.iff-installed"
fi
# Keep PyTensor's compile cache in the checkout so runs and tests compile each model once.
export PYTENSOR_FLAGS="${PYTENSOR_FLAGS:-base_compiledir=$IFF_ROOT/.pytensor_cache}"
export MPLBACKEND="${MPLBACKEND:-Agg}"
# PyTensor compiles models in an order that depends on the hash seed: pin it for repeatable runs.
export PYTHONHASHSEED="${PYTHONHASHSEED:-0}"
