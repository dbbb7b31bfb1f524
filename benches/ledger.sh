#!/usr/bin/env bash
# The embedded ledger's cost: `session-ca serve` (release build, embedded
# default: P-256 CA in signer-key/, ledger in signer-key/ledger.sqlite3)
# with the ledger off (SESSION_CA_STORE__URL=none), on, on with
# store.sync = "normal" (no fsync per record), and on with the
# fleet features ("fleet": the default profile limited per caller, session
# and transaction, with limits no run reaches, and a fresh Idempotency-Key
# on every request, so each is counted three times and its response sealed
# and stored), one after the other in one run, under wrk at each
# concurrency: requests per second and server CPU per request
# (utime+stime of the server process over the measured run,
# /proc/PID/stat), the ledger writer thread's share of that CPU
# (/proc/PID/task/TID/stat of the thread named ledger-writer) and the
# bytes the server had written to disk per request (write_bytes of
# /proc/PID/io: WAL frames and checkpoints), and the ratios. What else
# runs on the machine disturbs the last two columns less than req/s, so
# they compare builds better on a busy machine. Any non-2xx answer stops
# the script.
#
#   benches/ledger.sh                    # DURATION=10 WARMUP=2 CONCURRENCY="8 64"
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10} WARMUP=${WARMUP:-2} CONCURRENCY=${CONCURRENCY:-"8 64"}
command -v wrk >/dev/null || { echo "benches/ledger.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --locked --bin session-ca >&2
bin=$PWD/target/release/session-ca
work=$(mktemp -d)
server=""
trap 'rm -rf "$work"' EXIT
export COMPARE_BODY=$PWD/benches/compare/session-ca-request.json
lua=$PWD/benches/compare/post.lua
ticks() { awk '{print $14 + $15}' "$1"; } # a stat file -> utime + stime in ticks
written() { awk '$1 == "write_bytes:" {print $2}' "/proc/$1/io"; }
writer_ticks() { # PID -> CPU ticks of its ledger-writer thread (0 without one)
  local comm
  for comm in /proc/"$1"/task/*/comm; do
    [[ $(<"$comm") == ledger-writer ]] && { ticks "${comm%/comm}/stat"; return; }
  done
  echo 0
}
run() { # MODE CONCURRENCY -> "reqs_per_s cpu_us_per_req writer_us_per_req kib_written_per_req"
  local mode=$1 c=$2 port=18443 out before after writer_before writer_after bytes_before bytes_after
  rm -rf "$work/$mode" && mkdir -p "$work/$mode"
  local script=$lua
  unset SESSION_CA_STORE__URL SESSION_CA_PROFILES__DEFAULT__RATE_LIMIT SESSION_CA_STORE__SYNC
  case $mode in
    off) export SESSION_CA_STORE__URL=none ;;
    normal) export SESSION_CA_STORE__SYNC=normal ;;
    fleet)
      export SESSION_CA_PROFILES__DEFAULT__RATE_LIMIT='{ per_caller = "100000000/min", per_session = "100000000/min", per_transaction = "100000000/min" }'
      script=$PWD/benches/compare/post-idempotent.lua ;;
  esac
  (cd "$work/$mode" && SESSION_CA_LOG=warn exec "$bin" serve --listen "127.0.0.1:$port" >/dev/null 2>&1) &
  server=$!
  trap 'kill $server 2>/dev/null || true' RETURN
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  wrk -t "$(( c < 2 ? c : 2 ))" -c "$c" -d "${WARMUP}s" -s "$script" "http://127.0.0.1:$port/v1/certificates" >/dev/null
  before=$(ticks /proc/$server/stat) writer_before=$(writer_ticks $server) bytes_before=$(written $server)
  out=$(wrk -t "$(( c < 2 ? c : 2 ))" -c "$c" -d "${DURATION}s" -s "$script" "http://127.0.0.1:$port/v1/certificates" | grep '^RESULT')
  after=$(ticks /proc/$server/stat) writer_after=$(writer_ticks $server) bytes_after=$(written $server)
  kill $server; wait $server 2>/dev/null || true
  local requests duration status
  requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$out")
  duration=$(sed -E 's/.*duration_us=([0-9]+).*/\1/' <<<"$out")
  status=$(sed -E 's/.*status=([0-9]+).*/\1/' <<<"$out")
  [[ $status == 0 ]] || { echo "benches/ledger.sh: $status non-2xx answers with the ledger $mode" >&2; exit 1; }
  awk -v r="$requests" -v d="$duration" -v t=$((after - before)) \
    -v w=$((writer_after - writer_before)) -v b=$((bytes_after - bytes_before)) \
    'BEGIN { printf "%.0f %.1f %.1f %.1f\n", r / (d / 1e6), t * 10000 / r, w * 10000 / r, b / 1024 / r }'
}
echo "| concurrency | ledger | req/s | server CPU per request | of it, the ledger writer | KiB written to disk per request |"
echo "|---|---|---|---|---|---|"
for c in $CONCURRENCY; do
  read -r on_rps on_cpu on_writer on_kib < <(run on "$c")
  read -r off_rps off_cpu _ off_kib < <(run off "$c")
  read -r fleet_rps fleet_cpu fleet_writer fleet_kib < <(run fleet "$c")
  read -r normal_rps normal_cpu normal_writer normal_kib < <(run normal "$c")
  echo "| $c | off | $off_rps | ${off_cpu} µs | — | $off_kib |"
  echo "| $c | on (SQLite) | $on_rps | ${on_cpu} µs | ${on_writer} µs | $on_kib |"
  echo "| $c | on, store.sync = normal | $normal_rps | ${normal_cpu} µs | ${normal_writer} µs | $normal_kib |"
  echo "| $c | on, with 3 rate limits and Idempotency-Key | $fleet_rps | ${fleet_cpu} µs | ${fleet_writer} µs | $fleet_kib |"
  awk -v on="$on_rps" -v off="$off_rps" -v c="$c" 'BEGIN { printf "| %s | on ÷ off | %.2f | | | |\n", c, on / off }'
  awk -v n="$normal_rps" -v off="$off_rps" -v c="$c" 'BEGIN { printf "| %s | normal ÷ off | %.2f | | | |\n", c, n / off }'
  awk -v f="$fleet_rps" -v on="$on_rps" -v fc="$fleet_cpu" -v oc="$on_cpu" -v c="$c" \
    'BEGIN { printf "| %s | fleet ÷ on | %.2f | %.2f | | |\n", c, f / on, fc / oc }'
done
