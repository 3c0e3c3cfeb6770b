#!/usr/bin/env bash
# What a newcomer does with the README: a new crate with the README's
# dependency lines and its first example as src/main.rs, built and run;
# then a real client (Python's websockets, from .venv) checks the 101 and
# the echo on ws://127.0.0.1:3000/chat. Shares the repository's target
# directory, so the dependencies are not built twice.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# The README's blocks: the first ```toml is the dependency lines, the
# first ```rust the example.
python3 - "$repo/README.md" "$work" "$repo" <<'PY'
import os, re, sys
readme, work, repo = sys.argv[1:]
text = open(readme).read()
blocks = re.findall(r"```(\w+)[^\n]*\n(.*?)```", text, re.S)
toml = next(body for kind, body in blocks if kind == "toml")
rust = next(body for kind, body in blocks if kind == "rust")
# The path the README assumes (../hyperws) is this checkout.
toml = toml.replace('path = "../hyperws"', f'path = "{repo}"')
os.makedirs(f"{work}/src")
open(f"{work}/Cargo.toml", "w").write(
    '[package]\nname = "newcomer"\nversion = "0.1.0"\nedition = "2021"\n\n' + toml + "\n[workspace]\n")
open(f"{work}/src/main.rs", "w").write(rust)
PY
cat "$work/Cargo.toml"

CARGO_TARGET_DIR="$target/newcomer" cargo build --quiet --manifest-path "$work/Cargo.toml"
"$target/newcomer/debug/newcomer" > "$work/server.log" 2>&1 &
pid=$!
.venv/bin/python - <<'PY'
import asyncio, sys, time
import websockets

async def main():
    deadline = time.monotonic() + 30
    while True:
        try:
            ws = await websockets.connect("ws://127.0.0.1:3000/chat", subprotocols=["chat.v1"])
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("the README's example never listened on 127.0.0.1:3000")
            await asyncio.sleep(0.2)
    async with ws:
        assert ws.response.status_code == 101, ws.response.status_code
        assert ws.subprotocol == "chat.v1", ws.subprotocol
        await ws.send("hello from a new crate")
        reply = await asyncio.wait_for(ws.recv(), 10)
        assert reply == "hello from a new crate", reply
    print("ok - the README's dependency lines and example build, answer 101 and echo")

asyncio.run(main())
PY
