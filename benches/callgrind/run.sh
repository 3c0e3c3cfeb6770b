#!/usr/bin/env bash
# Instruction counts of an echo server under a fixed load, for comparing two
# builds, or two servers, where wall-clock benchmarks are too noisy
# (callgrind's counts do not move with the machine's load).
#
# Usage: bash benches/callgrind/run.sh SIZE MESSAGES CONNECTIONS SERVER_COMMAND...
#   The word ADDR in the server command is replaced by the address to listen on.
#   e.g. bash benches/callgrind/run.sh 1024 3000 4 target/release/examples/echo ADDR
#        bash benches/callgrind/run.sh 65536 300 4 target/release/deps/echo-HASH serve fastwebsockets ADDR
# SIZE 0 opens and closes connections instead, SIZE -1 opens and resets them.
# With PER_MESSAGE=1 the load runs twice (MESSAGES, then twice as many) and
# the difference is printed per echoed message: start-up and handshakes
# cancel out.
# Needs valgrind and Python's websockets (.venv, as .ci/run makes it).
# Prints the total instructions (Ir) the server executed.
set -euo pipefail
cd "$(dirname "$0")/../.."
size=$1 n=$2 conns=$3
shift 3

# Runs the server under callgrind for N messages per connection; prints Ir.
count() {
    local n=$1
    shift
    local port out server
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    out=$(mktemp)
    local cmd=()
    for word in "$@"; do cmd+=("${word//ADDR/127.0.0.1:$port}"); done
    WORKERS=1 valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" >/dev/null 2>&1 &
    server=$!
    .venv/bin/python benches/callgrind/load.py "ws://127.0.0.1:$port/" "$size" "$n" "$conns"
    kill -INT "$server"
    # Some servers stop only on SIGTERM.
    (sleep 5 && kill -TERM "$server" 2>/dev/null) &
    wait "$server" 2>/dev/null || true
    awk '/^totals:/ {print $2}' "$out"
    rm -f "$out"
}

if [[ "${PER_MESSAGE:-0}" == 1 ]]; then
    one=$(count "$n" "$@")
    two=$(count "$((2 * n))" "$@")
    echo "per message: $(( (two - one) / (n * conns) )) Ir (totals $one, $two)"
else
    echo "totals: $(count "$n" "$@")"
fi
