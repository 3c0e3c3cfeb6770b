#!/usr/bin/env bash
# Runs the chat demo on a loopback port and drives it with headless Chromium;
# then the echo example in both compression modes, against Chromium's
# permessage-deflate.
# Needs Debian's chromium (/usr/bin/chromium) and Node; installs
# playwright-core from the lock file. Screenshot: <target dir>/chat.png.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --quiet --example chat --example echo
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
mkdir -p "$target"
(cd tests/browser && npm ci --no-audit --no-fund --silent)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$target/debug/examples/chat" "127.0.0.1:$port" > "$target/chat-server.log" 2>&1 &
server=$!
pids=()
trap 'kill $server "${pids[@]}" 2>/dev/null || true' EXIT

listening=no
for _ in $(seq 1 100); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
    listening=yes
    break
  fi
  sleep 0.1
done
if [ "$listening" != yes ]; then
  echo "the chat server did not start:" >&2
  cat "$target/chat-server.log" >&2
  exit 1
fi

timeout 120 node tests/browser/chat.mjs "http://127.0.0.1:$port" "$target/chat.png"

# The echo example, compressed: dedicated, shared, and dedicated with
# context takeover.
urls=()
for mode in --deflate --deflate=shared --deflate=takeover; do
  log="$target/echo${mode}.log"
  "$target/debug/examples/echo" 127.0.0.1:0 "$mode" > "$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    addr=$(grep -o 'ws://[0-9.:]*' "$log" | head -1 || true)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "the echo example ($mode) did not start" >&2; cat "$log" >&2; exit 1; }
  urls+=("$addr/")
done
timeout 300 node tests/browser/deflate.mjs "${urls[@]}"
