#!/usr/bin/env bash
# demo.sh: set everything up, then pull a real image from a real registry started locally,
# verify and unpack it, inspect it and run it in the namespace sandbox and in a microVM, checking
# that each step prints what it should (exit 1 at the first that does not).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/bootstrap.sh
source ./scripts/venv.sh
exec python scripts/demo.py "$@"
