#!/usr/bin/env bash
# Runs the chat demo on a loopback port and drives it with headless Chromium;
# then two chat processes sharing one redis-server, with a visitor on each;
# then the auth example's three ways to authenticate; then the echo
# example in both compression modes, against Chromium's permessage-deflate.
# Needs Debian's chromium (/usr/bin/chromium), redis-server and Node;
# installs playwright-core from the lock file. Screenshots: <target dir>/chat*.png.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --quiet --features redis --example chat --example echo --example auth
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
mkdir -p "$target"
(cd tests/browser && npm ci --no-audit --no-fund --silent)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# Waits for a listener on PORT; on failure shows LOG.
wait_for() {
  for _ in $(seq 1 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "nothing listens on $1:" >&2
  cat "$2" >&2
  exit 1
}

port=$(free_port)
"$target/debug/examples/chat" "127.0.0.1:$port" > "$target/chat-server.log" 2>&1 &
pids+=($!)
wait_for "$port" "$target/chat-server.log"
timeout 120 node tests/browser/chat.mjs "http://127.0.0.1:$port" "" "$target/chat.png"

# Two chat processes on one Redis: ada on the first, bob on the second;
# each sees the other online, messages and notices cross.
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  > "$target/chat-redis.log" 2>&1 &
pids+=($!)
wait_for "$redis_port" "$target/chat-redis.log"
one=$(free_port)
two=$(free_port)
for p in "$one" "$two"; do
  "$target/debug/examples/chat" --listen "127.0.0.1:$p" --redis "redis://127.0.0.1:$redis_port/" \
    > "$target/chat-server-$p.log" 2>&1 &
  pids+=($!)
  wait_for "$p" "$target/chat-server-$p.log"
done
timeout 120 node tests/browser/chat.mjs "http://127.0.0.1:$one" "http://127.0.0.1:$two"

# The chat as people use it (resume.mjs starts, kills and restarts its own
# two chat processes on the same Redis): reconnect and resume after a
# restart, history on reload, the EventSource view, limits, 375 px.
# Screenshots: <target dir>/chat-resumed.png, chat-375.png.
timeout 180 node tests/browser/resume.mjs "$target/debug/examples/chat" \
  "redis://127.0.0.1:$redis_port/" "$(free_port)" "$(free_port)" "$target"

# The auth example: cookie, ticket in the URL, ticket as subprotocol, and a
# page of another origin (the same example on another port) refused.
auth_ports=()
for _ in 1 2; do
  p=$(free_port)
  RUST_LOG=hyperws=debug "$target/debug/examples/auth" "127.0.0.1:$p" > "$target/auth-$p.log" 2>&1 &
  pids+=($!)
  wait_for "$p" "$target/auth-$p.log"
  auth_ports+=("$p")
done
timeout 120 node tests/browser/auth.mjs "http://127.0.0.1:${auth_ports[0]}" "http://127.0.0.1:${auth_ports[1]}"
# The cross-origin attempt carried the cookie and was refused for its
# origin, not for want of a session.
grep -q 'reason="origin_refused"' "$target/auth-${auth_ports[0]}.log" || {
  echo "the cross-origin WebSocket was not refused by the origin check:" >&2
  cat "$target/auth-${auth_ports[0]}.log" >&2
  exit 1
}

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
