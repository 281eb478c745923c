#!/usr/bin/env bash
# lint.sh: black --check and mypy over python/ (configuration: pyproject.toml), with Debian's black
# and mypy (scripts/bootstrap.sh installs them; they run on /usr/bin/python3, whose packages are
# the ones the venv sees).
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
echo "== black --check python/"
black --check python/ || status=1
echo "== mypy python/benchrun"
mypy python/benchrun || status=1
exit "$status"
