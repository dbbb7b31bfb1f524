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
profile=${PROFILE:-release}
export PATH="$PWD/.venv/bin:$PATH"
command -v moto_server >/dev/null && command -v cargo-lambda >/dev/null ||
  { echo "run scripts/test once first: it installs moto_server and cargo-lambda into .venv/" >&2; exit 1; }

cargo build --quiet --profile "$profile" --bin session-ca
bin="$PWD/target/$profile/session-ca"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

moto_port=$(free_port)
moto_server -H 127.0.0.1 -p "$moto_port" >/dev/null 2>&1 & pids+=($!)
api_port=$(free_port)
cargo-lambda lambda watch --only-lambda-apis --invoke-address 127.0.0.1 --invoke-port "$api_port" >/dev/null 2>&1 & pids+=($!)
wait_port "$moto_port"
wait_port "$api_port"

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1
export AWS_ENDPOINT_URL_SSM="http://127.0.0.1:$moto_port"
"$bin" init --dir "$work/ca" >/dev/null
"$bin" publish-ssm --dir "$work/ca" --prefix /bench/ca >/dev/null

samples=()
for _ in $(seq "$runs"); do
  curl -sS -o "$work/out.json" -X POST \
    "http://127.0.0.1:$api_port/2015-03-31/functions/_/invocations" \
    --data-binary @tests/fixtures/lambda/function_url_iam.json & invoke=$!
  sleep 0.3
  start=$(date +%s%N)
  AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$api_port/.rt" AWS_LAMBDA_FUNCTION_NAME=_ \
    AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
    SESSION_CA_CAS__DEFAULT__SOURCE=ssm:/bench/ca SESSION_CA_LOG="${SESSION_CA_LOG:-warn}" \
    SESSION_CA_PROFILES__DEFAULT__ALLOWED_CALLERS='["arn:aws:sts::123456789012:assumed-role/payments-*/*"]' \
    env -u SESSION_CA_CONFIG "$bin" 2>>"${FUNCTION_LOG:-/dev/null}" & fn=$!
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
