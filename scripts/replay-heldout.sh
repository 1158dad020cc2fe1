#!/usr/bin/env bash
# Traces held out of pkp's tuning, 4 front-ends, reuse 300 s, warm-up 1 h: every baseline beside
# pkp at budgets 0.1 and 0.2. Generated profiles and seeds never tuned on (docs/replay/heldout.txt),
# and the 8-hour Azure sample's own trigger subsets (docs/replay/heldout-triggers.txt): real traces
# never tuned on by themselves, though since 2026-12-03 a validation set (the cap's pressure on the
# price was chosen on them). Tens of minutes: generated traces have receives and many principals.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node bin/pkp.js gen --seed 7 --days 3 --queues 40 --rate 0.2 --principals 5 --out "$tmp/mixed-s7.csv" >/dev/null
node bin/pkp.js gen --profile regime-change --seed 5 --out "$tmp/regime-s5.csv" >/dev/null
node bin/pkp.js gen --seed 11 --days 3 --queues 120 --rate 0.5 --principals 5 --out "$tmp/mixed-s11.csv" >/dev/null
for kind in cron bursty; do
  { head -1 "$tmp/mixed-s11.csv"; grep -- "-$kind," "$tmp/mixed-s11.csv"; } > "$tmp/$kind-s11.csv"
done
out=docs/replay/heldout.txt
: > "$out"
for name in regime-s5 cron-s11 bursty-s11 mixed-s7; do
  echo "== $name" | tee -a "$out" >&2
  node bin/pkp.js replay --trace "$tmp/$name.csv" --policies reactive,refresh-ahead,histogram,idle-price@8,idle-price@2,idle-price@0.75,idle-price@0.25,pkp,oracle --frontends 4 \
    --reuse 300 --warmup 3600 --seed 1 --sweep max-kms-overhead=0.1,0.2 2>/dev/null | tee -a "$out"
done
triggers=docs/replay/heldout-triggers.txt
: > "$triggers"
for trigger in http timer orchestration; do
  echo "== azure2019-250fn-8h --trigger $trigger" | tee -a "$triggers" >&2
  node bin/pkp.js replay --trace test/fixtures/azure2019-250fn-8h.csv --trigger "$trigger" --policies reactive,refresh-ahead,histogram,idle-price@8,idle-price@4,idle-price@2,idle-price@0.75,idle-price@0.25,pkp,oracle \
    --frontends 4 --reuse 300 --warmup 3600 --seed 1 --sweep max-kms-overhead=0.05,0.1,0.2 2>/dev/null | tee -a "$triggers"
done
