#!/usr/bin/env bash
# Replays the 8-hour Azure sample with and without --trigger queue at 1, 4 and 16 front-ends
# (reuse 300 s, warm-up 1 h, seed 1) under every policy, pkp included, and writes
# docs/replay/<name>.{json,html,txt}.
set -euo pipefail
cd "$(dirname "$0")/.."
trace=test/fixtures/azure2019-250fn-8h.csv
mkdir -p docs/replay
for trigger in queue all; do
  for fe in 1 4 16; do
    name="${trigger}-${fe}fe"
    args=(--trace "$trace" --policies reactive,refresh-ahead,histogram,pkp,oracle,none --frontends "$fe" --reuse 300 --warmup 3600 --seed 1
          --json "docs/replay/$name.json" --html "docs/replay/$name.html")
    [ "$trigger" = queue ] && args+=(--trigger queue)
    echo "== $name" >&2
    node bin/pkp.js replay "${args[@]}" 2>/dev/null | tee "docs/replay/$name.txt"
  done
done
