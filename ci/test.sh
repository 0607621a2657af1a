#!/usr/bin/env bash
# Install pystream with its test extra into a virtual environment and run the whole test suite.
# Fails when any test fails or when no test ran. Usage: bash ci/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${PYSTREAM_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e ".[test]"
# pytest (not `python -m pytest`) so the installed package is imported, with its compiled extensions.
set +e
"$VENV/bin/pytest" -q -p no:randomly "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "ci/test.sh: no tests ran" >&2
    exit 1
fi
exit "$rc"
