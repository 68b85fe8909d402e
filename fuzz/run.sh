#!/usr/bin/env bash
# Runs fuzz targets one after another, each for SECONDS (default 600) of wall time.
# A run that ends early (a hang or the memory guard aborting) is restarted with the next
# seed until the target's time is used up. Logs and JSON summaries go to runs/.
#
#   ./run.sh [--bin PATH] [--seconds N] target...
set -u
cd "$(dirname "$0")"
BIN=target/release/mspa-fuzz
SECONDS_PER=600
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --seconds) SECONDS_PER=$2; shift 2 ;;
    *) break ;;
  esac
done
mkdir -p runs
for t in "$@"; do
  start=$(date +%s)
  seed=1
  : > "runs/$t.log"
  while :; do
    left=$(( SECONDS_PER - ($(date +%s) - start) ))
    [ "$left" -le 5 ] && break
    "$BIN" run "$t" --seconds "$left" --seed "$seed" --stats "runs/$t.seed$seed.json" > /dev/null 2>> "runs/$t.log"
    rc=$?
    echo "[run.sh] $t seed $seed exited $rc after $(( $(date +%s) - start )) s" >> "runs/$t.log"
    seed=$((seed + 1))
  done
done
