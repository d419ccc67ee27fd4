#!/usr/bin/env bash
# A real chat session with kever through Open WebUI, driven in headless Chromium; screenshots
# and the answers read from the page go to benchmarks/results/chat_ui/. Not part of CI (heavy:
# Open WebUI pulls ~7 GB). Loopback only.
#
#   bash benchmarks/chat_ui/run.sh                         # kever serve --preset offline
#   PRESET=fake-reasoner bash benchmarks/chat_ui/run.sh    # the FakeReasoner test double: fast, for the UI itself
#
# Needs: .venv (bash scripts/setup.sh), python3.11, node + npm, Debian's chromium
# (apt-get install -y chromium). Open WebUI is installed once into its own venv
# ($KEVER_CHAT_UI_VENV, default ~/.cache/kever-chat-ui/venv), never into .venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PRESET=${PRESET:-offline}
MODEL=${MODEL:-kever}
IMAGE=${IMAGE:-$ROOT/kever/assets/astronaut.jpg}
OWUI_VERSION=${OWUI_VERSION:-0.12.4}
VENV=${KEVER_CHAT_UI_VENV:-$HOME/.cache/kever-chat-ui/venv}
OUT=${OUT:-$ROOT/benchmarks/results/chat_ui}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

[ -x .venv/bin/kever ] || { echo "chat_ui: run 'bash scripts/setup.sh' first" >&2; exit 2; }
[ -x "$CHROMIUM" ] || { echo "chat_ui: no $CHROMIUM: apt-get install -y chromium" >&2; exit 2; }
command -v npm >/dev/null || { echo "chat_ui: npm is needed (apt-get install -y npm)" >&2; exit 2; }
if [ ! -x "$VENV/bin/open-webui" ]; then
  echo "chat_ui: installing open-webui==$OWUI_VERSION into $VENV (first time: minutes, ~7 GB)" >&2
  python3.11 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "open-webui==$OWUI_VERSION"
fi
(cd benchmarks/chat_ui && { [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --silent; })

WORK=$(mktemp -d /tmp/kever-chat-ui.XXXXXX)
rm -rf "$OUT" && mkdir -p "$OUT"
port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
KPORT=$(port); WPORT=$(port); KEY=chat-ui-$RANDOM$RANDOM
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_http() {  # url seconds what
  local t=0
  until curl -fs -o /dev/null "$1"; do
    sleep 1; t=$((t + 1))
    [ "$t" -lt "$2" ] || { echo "chat_ui: $3 did not come up within $2 s (logs in $WORK)" >&2; exit 1; }
  done
}

echo "chat_ui: kever serve --preset $PRESET on 127.0.0.1:$KPORT" >&2
.venv/bin/kever serve --preset "$PRESET" --host 127.0.0.1 --port "$KPORT" --api-key "$KEY" \
  --db "$WORK/kever.sqlite" --log-level info >"$WORK/kever.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$KPORT/healthz" 600 "kever serve"

# Open WebUI: offline, no auth, only kever as a model, background tasks off, and the chat id
# forwarded to kever (ENABLE_FORWARD_USER_INFO_HEADERS: X-OpenWebUI-Chat-Id and the user's id).
echo "chat_ui: open-webui on 127.0.0.1:$WPORT" >&2
env DATA_DIR="$WORK/owui" WEBUI_AUTH=False WEBUI_SECRET_KEY="$KEY" ENABLE_OLLAMA_API=False \
  ENABLE_OPENAI_API=True OPENAI_API_BASE_URL="http://127.0.0.1:$KPORT/v1" OPENAI_API_KEY="$KEY" \
  ENABLE_FORWARD_USER_INFO_HEADERS=True \
  OFFLINE_MODE=True HF_HUB_OFFLINE=1 BYPASS_EMBEDDING_AND_RETRIEVAL=True \
  RAG_EMBEDDING_ENGINE=openai RAG_OPENAI_API_BASE_URL="http://127.0.0.1:$KPORT/v1" RAG_OPENAI_API_KEY="$KEY" \
  ENABLE_TITLE_GENERATION=False ENABLE_TAGS_GENERATION=False ENABLE_FOLLOW_UP_GENERATION=False \
  ENABLE_AUTOCOMPLETE_GENERATION=False ANONYMIZED_TELEMETRY=False DO_NOT_TRACK=True SCARF_NO_ANALYTICS=True \
  "$VENV/bin/open-webui" serve --host 127.0.0.1 --port "$WPORT" >"$WORK/owui.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$WPORT/health" 300 "open-webui"

echo "chat_ui: driving Chromium (model $MODEL, image $(basename "$IMAGE"))" >&2
WEBUI_URL="http://127.0.0.1:$WPORT" MODEL="$MODEL" IMAGE="$IMAGE" OUT="$OUT" CHROMIUM="$CHROMIUM" \
  PROFILE="$WORK/chromium-profile" node benchmarks/chat_ui/drive.mjs

# What kever kept: the conversation Open WebUI named with its chat id, and its turns.
.venv/bin/python - "$WORK/kever.sqlite" "$OUT/session.json" <<'EOF'
import json, sqlite3, sys
db, session = sys.argv[1], sys.argv[2]
s = json.load(open(session))
c = sqlite3.connect(db)
rows = c.execute("SELECT id, model, turns FROM conversations ORDER BY created").fetchall()
s["kever_conversations"] = [{"id": i, "model": m, "turns": t} for i, m, t in rows]
s["chat_id_is_kever_conversation"] = any(i == s.get("chat_id") for i, _, _ in rows)
json.dump(s, open(session, "w"), indent=2, ensure_ascii=False)
print(json.dumps({k: s[k] for k in ("chat_id", "chat_id_is_kever_conversation", "kever_conversations")}, indent=2))
if not s["chat_id_is_kever_conversation"]:
    sys.exit("chat_ui: kever did not key the conversation by Open WebUI's chat id")
EOF
cp "$WORK/kever.log" "$OUT/kever.log"
echo "chat_ui: done: $OUT" >&2
