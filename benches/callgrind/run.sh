#!/usr/bin/env bash
# Instruction counts of the echo example under a fixed load, for comparing
# two builds where wall-clock benchmarks are too noisy (callgrind's counts
# do not move with the machine's load).
#
# Usage: bash benches/callgrind/run.sh ECHO_BINARY SIZE MESSAGES CONNECTIONS [ECHO_FLAGS...]
#   e.g. bash benches/callgrind/run.sh target/release/examples/echo 1024 3000 4
# Needs valgrind and Python's websockets (.venv, as .ci/run makes it).
# Prints the total instructions (Ir) the server executed.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$1 size=$2 n=$3 conns=$4
shift 4
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
out=$(mktemp)
valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "127.0.0.1:$port" "$@" >/dev/null 2>&1 &
server=$!
.venv/bin/python benches/callgrind/load.py "ws://127.0.0.1:$port/" "$size" "$n" "$conns"
kill -INT "$server"
wait "$server" 2>/dev/null || true
grep -E "^totals" "$out"
rm -f "$out"
