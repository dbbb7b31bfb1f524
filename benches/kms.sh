#!/usr/bin/env bash
# Signer CPU per issuance with the CA key in memory, in AWS KMS delegated
# mode and in KMS direct mode (benches/kms.rs), against moto's server on
# loopback (started here, with the KMS behaviours moto lacks added by
# tests/service/scripts/moto_server_kms.py). Needs the Python tools of
# scripts/test in .venv/ (it installs them).
#
#   benches/kms.sh                      # ring
#   benches/kms.sh --no-default-features --features aws-lc
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || { echo "benches/kms.sh: run scripts/test once to install .venv/" >&2; exit 1; }
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/python tests/service/scripts/moto_server_kms.py -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
SESSION_CA_BENCH_AWS_ENDPOINT="http://127.0.0.1:$port" cargo bench --locked --bench kms "$@"
