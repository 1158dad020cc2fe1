#!/usr/bin/env bash
# pkp's trade-off curve beside every baseline (the idle-price baseline at the four prices issue 14 quotes): the 8-hour Azure sample with and without
# --trigger queue and the 24-hour sample, at 4 and 16 front-ends (reuse 300 s, warm-up 1 h,
# seed 1, random balancing), one --sweep each; writes docs/replay/<name>.txt (and the queue
# trace's HTML report at 4 front-ends). A few minutes; pkp is the slow policy.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/replay
sweep=max-kms-overhead=0,0.02,0.05,0.1,0.2,0.4,0.6,1
for spec in queue:azure2019-250fn-8h.csv:queue all:azure2019-250fn-8h.csv: 24h:azure2019-10fn-24h.csv:; do
  IFS=: read -r label file trigger <<<"$spec"
  for fe in 4 16; do
    name="${label}-${fe}fe"
    args=(--trace "test/fixtures/$file" --policies reactive,refresh-ahead,histogram,idle-price@8,idle-price@2,idle-price@0.75,idle-price@0.25,pkp,oracle --frontends "$fe"
          --reuse 300 --warmup 3600 --seed 1 --sweep "$sweep")
    [ -n "$trigger" ] && args+=(--trigger "$trigger")
    [ "$name" = queue-4fe ] && args+=(--html docs/replay/queue-4fe.html)
    echo "== $name" >&2
    node bin/pkp.js replay "${args[@]}" 2>/dev/null | tee "docs/replay/$name.txt"
  done
done
