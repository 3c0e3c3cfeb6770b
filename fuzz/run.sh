#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30) on its corpus and the
# committed seeds; fails on the first crash (the input is left in
# fuzz/artifacts/TARGET/). Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). A long run: `bash fuzz/run.sh 3600`.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
targets=(handshake frame_tracker path_params envelope deflate_offer inflate_stream deflate_round_trip)
cargo +nightly fuzz build -O
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "fuzz: $target for ${seconds}s"
  cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 2>&1 |
    grep -E "^(Done|==[0-9]+== ERROR|SUMMARY)|panicked|stat::number_of_executed_units" || true
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "fuzz: $target found a crash: $(ls "artifacts/$target")" >&2
    exit 1
  fi
done
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash"
