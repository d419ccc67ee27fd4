#!/usr/bin/env bash
# Run kever's test suite, setting up .venv first if needed.
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -m 'not slow'
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
