#!/usr/bin/env bash
# Run kever's test suite, setting up .venv first if needed.
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -m 'not slow'
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# WordNet 3.0 (Debian wordnet-base, ~9 s) lets tests/test_knowledge_derived.py rerun the derivation
# of knowledge/cues/imagenet.yaml; best effort: without it (no root, no apt) that test skips, saying so.
if [ ! -f /usr/share/wordnet/data.noun ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (timeout 120 apt-get update -qq && timeout 120 apt-get install -y -qq wordnet-base) >/dev/null 2>&1 \
    || echo "kever test: could not install wordnet-base; the WordNet derivation test will skip"
fi
exec .venv/bin/python -m pytest "$@"
