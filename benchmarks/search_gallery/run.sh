#!/usr/bin/env bash
# The search gallery in headless Chromium: kever serve --index over a real index, the page
# driven as a person would (key, emotion chip, free text, explain, more like this);
# screenshots and what the page showed go to benchmarks/results/search_gallery/. Not part of CI.
#
#   bash benchmarks/search_gallery/run.sh                 # index: runs/search/emotion6_dev (built if missing)
#   INDEX=path/to/index bash benchmarks/search_gallery/run.sh
#
# Needs: .venv (bash scripts/setup.sh), node + npm, Debian's chromium (apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
INDEX=${INDEX:-$ROOT/runs/search/emotion6_dev}
PHOTOS=${PHOTOS:-$ROOT/../shared/data/emotion6_dev/images}
PRESET=${PRESET:-offline}
OUT=${OUT:-$ROOT/benchmarks/results/search_gallery}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

[ -x .venv/bin/kever ] || { echo "search_gallery: run 'bash scripts/setup.sh' first" >&2; exit 2; }
[ -x "$CHROMIUM" ] || { echo "search_gallery: no $CHROMIUM: apt-get install -y chromium" >&2; exit 2; }
command -v npm >/dev/null || { echo "search_gallery: npm is needed" >&2; exit 2; }
(cd benchmarks/search_gallery && { [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --silent; })
if [ ! -f "$INDEX/kever-index.json" ]; then
  .venv/bin/kever index "$PHOTOS" --index "$INDEX" --preset "$PRESET"
fi

WORK=$(mktemp -d /tmp/kever-search-gallery.XXXXXX)
rm -rf "$OUT" && mkdir -p "$OUT"
PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
KEY=gallery-$RANDOM$RANDOM
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

.venv/bin/kever serve --preset "$PRESET" --index "$INDEX" --host 127.0.0.1 --port "$PORT" --api-key "$KEY" \
  --db "$WORK/kever.sqlite" >"$WORK/kever.log" 2>&1 &
PIDS+=($!)
t=0
until curl -fs -o /dev/null "http://127.0.0.1:$PORT/healthz"; do
  sleep 1; t=$((t + 1)); [ "$t" -lt 300 ] || { echo "search_gallery: server did not start (log: $WORK/kever.log)" >&2; exit 1; }
done
BASE="http://127.0.0.1:$PORT" KEY="$KEY" OUT="$OUT" CHROMIUM="$CHROMIUM" PROFILE="$WORK/chromium-profile" \
  node benchmarks/search_gallery/drive.mjs
echo "search_gallery: done: $OUT" >&2
