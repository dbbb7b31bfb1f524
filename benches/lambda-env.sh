# Sourced by benches/lambda-cold-start.sh and benches/lambda-cost.sh: the
# release binary in Lambda mode against a local Parameter Store
# (moto_server) and cargo lambda's runtime API emulator on loopback.
#
# After `lambda_env_start`: $bin (SESSION_CA_BIN, or the current build), $work (a temporary directory), $fixture
# (a Function URL event with IAM auth), $invoke_url (the emulator's invoke
# endpoint), the CA published at /bench/ca, and a trap that kills what was
# started (`pids`) and removes $work. `start_function` starts the function
# in the background; its PID is in $fn (the caller stops it, or adds it to
# `pids`).

lambda_env_start() {
  profile=${PROFILE:-release}
  export PATH="$PWD/.venv/bin:$PATH"
  command -v moto_server >/dev/null && command -v cargo-lambda >/dev/null ||
    { echo "run scripts/test once first: it installs moto_server and cargo-lambda into .venv/" >&2; exit 1; }
  # SESSION_CA_BIN: a binary built elsewhere (say, the one before a change,
  # for a comparison in one sitting); otherwise the current build.
  if [[ -n ${SESSION_CA_BIN:-} ]]; then
    bin=$SESSION_CA_BIN
  else
    cargo build --quiet --profile "$profile" --bin session-ca
    bin="$PWD/target/$profile/session-ca"
  fi
  fixture="$PWD/tests/fixtures/lambda/function_url_iam.json"
  work=$(mktemp -d)
  pids=()
  trap lambda_env_stop EXIT

  local moto_port
  moto_port=$(free_port)
  moto_server -H 127.0.0.1 -p "$moto_port" >/dev/null 2>&1 & pids+=($!)
  api_port=$(free_port)
  cargo-lambda lambda watch --only-lambda-apis --invoke-address 127.0.0.1 --invoke-port "$api_port" >/dev/null 2>&1 & pids+=($!)
  wait_port "$moto_port"
  wait_port "$api_port"
  invoke_url="http://127.0.0.1:$api_port/2015-03-31/functions/_/invocations"

  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1
  export AWS_ENDPOINT_URL_SSM="http://127.0.0.1:$moto_port"
  "$bin" init --dir "$work/ca" >/dev/null
  "$bin" publish-ssm --dir "$work/ca" --prefix /bench/ca >/dev/null
}

lambda_env_stop() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -KILL "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  rm -rf "$work"
}

# The function as Lambda starts it: no arguments, the runtime API address,
# its CA in Parameter Store, the IAM callers the fixture's role matches.
# Its log goes to $FUNCTION_LOG (default: nowhere); SESSION_CA_LOG is the
# caller's (default: the binary's).
start_function() {
  env -u SESSION_CA_CONFIG AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$api_port/.rt" \
    AWS_LAMBDA_FUNCTION_NAME=_ AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
    SESSION_CA_CAS__DEFAULT__SOURCE=ssm:/bench/ca \
    SESSION_CA_PROFILES__DEFAULT__ALLOWED_CALLERS='["arn:aws:sts::123456789012:assumed-role/payments-*/*"]' \
    SESSION_CA_PROFILES__DEFAULT__SUBJECT='O=Example Bank,C=NL' \
    "$bin" 2>>"${FUNCTION_LOG:-/dev/null}" &
  fn=$!
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
