#!/usr/bin/env bash
# Cold start in Lambda mode against a local Parameter Store (moto_server):
# time from starting the binary to the first 201, median of N runs.
#
# The invocation is queued in cargo lambda's runtime API emulator first, so
# the figure is process start -> CA loaded from SSM -> event handled -> 201
# relayed, without the invoking client's own start-up.
#
#   benches/lambda-cold-start.sh [N]     (needs scripts/test's .venv/)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
source benches/lambda-env.sh
lambda_env_start

samples=()
for _ in $(seq "$runs"); do
  curl -sS -o "$work/out.json" -X POST "$invoke_url" --data-binary @"$fixture" & invoke=$!
  sleep 0.3
  start=$(date +%s%N)
  SESSION_CA_LOG="${SESSION_CA_LOG:-warn}" start_function
  wait "$invoke"
  end=$(date +%s%N)
  kill -KILL "$fn" 2>/dev/null || true
  wait "$fn" 2>/dev/null || true
  grep -q '"statusCode":201' "$work/out.json" || { echo "no 201: $(head -c 300 "$work/out.json")" >&2; exit 1; }
  samples+=($(( (end - start) / 1000 )))
done
sorted=($(printf '%s\n' "${samples[@]}" | sort -n))
median=${sorted[$(( ${#sorted[@]} / 2 ))]}
echo "cold start ($profile, $runs runs): median $((median / 1000)).$(( (median % 1000) / 100 )) ms; all (µs): ${samples[*]}"
echo "binary: $(stat -c %s "$bin") bytes ($profile)"
