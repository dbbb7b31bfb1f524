#!/usr/bin/env bash
# Side by side: `session-ca serve` (release build) against `cfssl serve`
# (Debian's golang-cfssl, the `newcert` endpoint), both on loopback, both
# generating a fresh ECDSA P-256 key and signing a 5-minute client
# certificate with the same P-256 CA on every request.
#
#   1. Installs what is missing with apt-get (curl jq openssl wrk
#      golang-cfssl gnuplot-nox) and builds session-ca with
#      `cargo build --release --locked`.
#   2. Makes one P-256 CA with `session-ca init`; session-ca reads it from
#      signer-key/ in its working directory (the embedded default
#      configuration), cfssl gets the same certificate and the same key
#      converted to SEC1 (`EC PRIVATE KEY`) by openssl, with the profile in
#      benches/compare/cfssl-config.json (digital signature, client auth).
#   3. Cold start: spawns each server COLD_STARTS times (alternating) and
#      polls in a tight loop, from bash itself over /dev/tcp (no process
#      spawned per probe), with the real issuance request until the first
#      success (session-ca answers 201, cfssl 200); median of the starts.
#   4. Starts one long-running process of each, issues one certificate from
#      each with curl and checks it (openssl verify -x509_strict -purpose
#      sslclient against the CA, P-256 key, key matches certificate); any
#      failure stops the script before anything is timed.
#   5. For each concurrency (1 8 64), session-ca then cfssl, each: a WARMUP
#      run (discarded) and a DURATION run of wrk --latency with
#      benches/compare/post.lua (threads = min(c, 2)). Any non-2xx response
#      or socket error stops the script. Server CPU per request is the
#      utime+stime delta of the server process (/proc/PID/stat) over the
#      measured run divided by the requests wrk completed; peak RSS is
#      VmHWM at the end.
#   6. The floors (issue 18), at concurrencies 8 and 64: the trivial axum
#      endpoint of benches/baseline.rs (built as an example, release, same
#      stack) under the same wrk runs, alone, and its CPU per request;
#      session-ca again with its ledger off (SESSION_CA_STORE__URL=none);
#      the crypto floor (`baseline floor`: one P-256 key generation plus
#      one signature, CPU per operation); the ratio of session-ca's CPU per
#      issuance to endpoint + floor, and req/s with the ledger on ÷ off.
#   7. Writes docs/performance.md (machine, versions, commands, tables,
#      ratios, targets) and docs/performance.png (gnuplot).
#
#   benches/compare.sh
#   DURATION=3 WARMUP=1 COLD_STARTS=3 OUT=/tmp/perf.md benches/compare.sh   # quick check
#
# Environment: DURATION (s, default 15), WARMUP (s, 2), CONCURRENCY
# ("1 8 64"), COLD_STARTS (5), OUT (docs/performance.md; the PNG goes next
# to it with the same base name), QUIET_WAIT_MIN (minutes to wait, checking
# every minute, for the 1-minute load average to drop below QUIET_LOAD=1.0
# before measuring; default 0 = do not wait), KEEP_WORK=1 (keep the
# temporary directory with the server logs and wrk outputs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
here=$root/benches/compare

duration=${DURATION:-15}
warmup=${WARMUP:-2}
concurrencies=${CONCURRENCY:-1 8 64}
cold_starts=${COLD_STARTS:-5}
out=${OUT:-$root/docs/performance.md}
png=${out%.md}.png
quiet_load=${QUIET_LOAD:-1.0}
quiet_wait_min=${QUIET_WAIT_MIN:-0}
keep_work=${KEEP_WORK:-0}

log() { printf '[compare %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# ---------------------------------------------------------------- tools
declare -A pkg_of=([curl]=curl [jq]=jq [openssl]=openssl [wrk]=wrk [cfssl]=golang-cfssl
  [gnuplot]=gnuplot-nox [git]=git [awk]=mawk)
missing=()
for cmd in "${!pkg_of[@]}"; do
  command -v "$cmd" >/dev/null || missing+=("${pkg_of[$cmd]}")
done
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: run apt-get install ${missing[*]} as root"
  log "installing from Debian: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || die "cargo is needed to build session-ca"
gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 || die "this gnuplot has no pngcairo terminal (install gnuplot-nox)"
cfssl_version=$(cfssl version | awk '/^Version:/ {print $2}')
[[ $cfssl_version == 1.2.* ]] || log "note: cfssl $cfssl_version, the reference figures are for cfssl 1.2"

log "building session-ca and the floors (cargo build --release --locked; --example baseline)"
cargo build --release --locked 2>&1 | tail -n 3 >&2
cargo build --release --locked --example baseline 2>&1 | tail -n 3 >&2
bin=$root/target/release/session-ca
baseline_bin=$root/target/release/examples/baseline
[[ -x $bin ]] || die "no $bin after the build"
[[ -x $baseline_bin ]] || die "no $baseline_bin after the build"

clk_tck=$(getconf CLK_TCK)
ncpu=$(nproc)

# ---------------------------------------------------------------- cleanup
work=$(mktemp -d -t session-ca-compare.XXXXXX)
pids=()
cleanup() {
  local rc=$? p
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  if [[ $keep_work == 1 ]]; then log "work directory kept: $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Stop one process this script started, and forget it.
stop() {
  local p=$1 q rest=()
  kill -TERM "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for q in "${pids[@]}"; do [[ $q == "$p" ]] || rest+=("$q"); done
  pids=("${rest[@]}")
}

# ---------------------------------------------------------------- the CA
mkdir -p "$work/session-ca" "$work/cfssl" "$work/runs"
"$bin" init --dir "$work/ca" >"$work/init.log" 2>&1 || { cat "$work/init.log" >&2; die "session-ca init"; }
openssl ec -in "$work/ca/ca-key.pem" -out "$work/cfssl/ca-key.pem" 2>/dev/null   # PKCS#8 -> SEC1
cp "$work/ca/ca-cert.pem" "$work/cfssl/ca-cert.pem"
cp "$here/cfssl-config.json" "$work/cfssl/cfssl-config.json"
ln -s ../ca "$work/session-ca/signer-key"   # the embedded default reads ./signer-key
chain=$work/ca/chain.pem

# ---------------------------------------------------------------- servers
servers=(session-ca cfssl)
declare -A path=([session-ca]=/v1/certificates [cfssl]=/api/v1/cfssl/newcert)
declare -A bodyfile=([session-ca]=$here/session-ca-request.json [cfssl]=$here/cfssl-newcert.json)
declare -A okcode=([session-ca]=201 [cfssl]=200)
declare -A certpath=([session-ca]=.certificate [cfssl]=.result.certificate)
declare -A keypath=([session-ca]=.private_key [cfssl]=.result.private_key)
# The trivial endpoint of benches/baseline.rs takes session-ca's request.
path[baseline]=/v1/certificates bodyfile[baseline]=$here/session-ca-request.json okcode[baseline]=201
path[no-ledger]=/v1/certificates bodyfile[no-ledger]=$here/session-ca-request.json okcode[no-ledger]=201
declare -A body
for s in "${servers[@]}" baseline no-ledger; do body[$s]=$(<"${bodyfile[$s]}"); done

server_cmd() { # name port -> the command line, as run in $work/<name>
  case $1 in
    session-ca) echo "$bin serve --listen 127.0.0.1:$2" ;;
    cfssl) echo "cfssl serve -address 127.0.0.1 -port $2 -ca ca-cert.pem -ca-key ca-key.pem -config cfssl-config.json" ;;
  esac
}

port_in_use() {
  local fd
  if { exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null; then exec {fd}>&-; return 0; fi
  return 1
}
free_port() {
  local p
  for _ in {1..200}; do
    p=$((20000 + RANDOM % 40000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free port"
}

# start NAME PORT LOG: sets started_pid and started_t0 (µs since the epoch, just before the spawn).
start() {
  local name=$1 port=$2 logf=$3 cmd
  read -ra cmd <<<"$(server_cmd "$name" "$port")"
  started_t0=${EPOCHREALTIME/./}
  (cd "$work/$name" && exec "${cmd[@]}") >"$logf" 2>&1 &
  started_pid=$!
  pids+=("$started_pid")
}

# probe NAME PORT: one issuance request over bash's /dev/tcp (Connection: close);
# sets probe_code (0 when the connection fails or no status line comes back).
probe() {
  local name=$1 port=$2 fd b=${body[$1]}
  probe_code=0
  { exec {fd}<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 0
  printf 'POST %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "${path[$name]}" "$port" "${#b}" "$b" >&"$fd" 2>/dev/null || { exec {fd}>&-; return 0; }
  IFS=' ' read -r -t 10 -u "$fd" _ probe_code _ 2>/dev/null || probe_code=0
  exec {fd}>&-
}

# wait_ok NAME PORT PID: tight loop until the first success; sets ok_t1 (µs since the epoch).
wait_ok() {
  local name=$1 port=$2 pid=$3 deadline=$((SECONDS + 30))
  while :; do
    probe "$name" "$port"
    [[ $probe_code == "${okcode[$name]}" ]] && break
    kill -0 "$pid" 2>/dev/null || die "$name exited before answering (log: $work/runs)"
    ((SECONDS < deadline)) || die "$name gave no ${okcode[$name]} within 30 s (last status $probe_code)"
  done
  ok_t1=${EPOCHREALTIME/./}
}

kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }        # PID FIELD -> kB
ticks() { local s; s=$(<"/proc/$1/stat"); s=${s##*) }; awk '{print $12 + $13}' <<<"$s"; } # utime+stime
sysstat() { awk '/^cpu / {b=$2+$3+$4+$7+$8+$9; t=b+$5+$6; print b, t, $9}' /proc/stat; }  # busy total steal
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
median() { tr ' ' '\n' <<<"$*" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# ---------------------------------------------------------------- quiet machine
if ((quiet_wait_min > 0)); then
  for ((i = 0; ; i++)); do
    l=$(cut -d' ' -f1 /proc/loadavg)
    awk -v l="$l" -v q="$quiet_load" 'BEGIN {exit !(l < q)}' && break
    ((i < quiet_wait_min)) || { log "load average still $l after $quiet_wait_min min: measuring anyway"; break; }
    log "1-minute load average $l >= $quiet_load, waiting (minute $((i + 1)) of $quiet_wait_min)"
    sleep 60
  done
fi
load_start=$(loadavg)
date_start=$(date -u '+%Y-%m-%d %H:%M UTC')
log "load average at start: $load_start"

# ---------------------------------------------------------------- cold start
declare -A cold cold_rss
for ((i = 1; i <= cold_starts; i++)); do
  for s in "${servers[@]}"; do
    port=$(free_port)
    start "$s" "$port" "$work/runs/cold-$s-$i.log"
    wait_ok "$s" "$port" "$started_pid"
    cold[$s]+="$(awk -v us=$((ok_t1 - started_t0)) 'BEGIN {printf "%.2f", us / 1000}') "
    cold_rss[$s]+="$(kib "$started_pid" VmHWM) "
    stop "$started_pid"
  done
done
for s in "${servers[@]}"; do log "cold start $s (ms): ${cold[$s]}"; done

# ---------------------------------------------------------------- the load servers, checked
declare -A port pid
for s in "${servers[@]}"; do
  port[$s]=$(free_port)
  start "$s" "${port[$s]}" "$work/$s.log"
  pid[$s]=$started_pid
  wait_ok "$s" "${port[$s]}" "${pid[$s]}"
done

declare -A certinfo
for s in "${servers[@]}"; do
  d=$work/check-$s
  mkdir -p "$d"
  code=$(curl -sS -o "$d/response.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data-binary "@${bodyfile[$s]}" "http://127.0.0.1:${port[$s]}${path[$s]}")
  [[ $code == "${okcode[$s]}" ]] || { cat "$d/response.json" >&2; die "$s answered HTTP $code"; }
  jq -er "${certpath[$s]}" "$d/response.json" >"$d/cert.pem" || die "$s: no certificate in the response"
  jq -er "${keypath[$s]}" "$d/response.json" >"$d/key.pem" || die "$s: no private key in the response"
  openssl verify -x509_strict -purpose sslclient -CAfile "$chain" "$d/cert.pem" >&2 ||
    die "$s: the certificate does not verify as a client certificate against the CA"
  openssl x509 -in "$d/cert.pem" -noout -text | grep -q 'ASN1 OID: prime256v1' || die "$s: the leaf key is not P-256"
  [[ $(openssl x509 -in "$d/cert.pem" -noout -pubkey) == "$(openssl pkey -in "$d/key.pem" -pubout)" ]] ||
    die "$s: the private key does not match the certificate"
  certinfo[$s]=$(openssl x509 -in "$d/cert.pem" -noout -subject -startdate -enddate -ext extendedKeyUsage 2>/dev/null |
    sed -e 's/^ *//' | grep -v '^X509v3' | paste -sd ';' - | sed 's/;/; /g')
  log "$s: certificate verified ($(head -c 60 <<<"${certinfo[$s]}")...)"
done
check_time=$(date -u '+%H:%M:%S')

# What one curl run costs here (spawn to exit, one issuance from the warm
# session-ca): why the cold start is polled from bash itself and not with curl.
curl_runs=()
for _ in 1 2 3 4 5; do
  a=${EPOCHREALTIME/./}
  curl -sS -o /dev/null -X POST -H 'Content-Type: application/json' \
    --data-binary "@${bodyfile[session-ca]}" "http://127.0.0.1:${port[session-ca]}${path[session-ca]}"
  b=${EPOCHREALTIME/./}
  curl_runs+=("$(awk -v us=$((b - a)) 'BEGIN {printf "%.2f", us / 1000}')")
done
curl_ms=$(median "${curl_runs[@]}")

# ---------------------------------------------------------------- load
declare -A R   # R[server,c,field]
wrk_cmd() { # name c seconds
  local threads=$(($2 < 2 ? $2 : 2))
  echo "wrk -t$threads -c$2 -d${3}s --timeout 10s --latency -s benches/compare/post.lua http://127.0.0.1:${port[$1]}${path[$1]}"
}
run_wrk() { # name c seconds outfile (run from $root: the script path is relative)
  local cmd
  read -ra cmd <<<"$(wrk_cmd "$1" "$2" "$3")"
  COMPARE_BODY=${bodyfile[$1]} "${cmd[@]}" >"$4" 2>&1
}
for c in $concurrencies; do
  for s in "${servers[@]}"; do
    o=$(printf '%s\n' "${servers[@]}" | grep -vx "$s")   # the idle one
    f=$work/runs/$s-c$c
    log "$s, concurrency $c: ${warmup} s warm-up, ${duration} s measured"
    run_wrk "$s" "$c" "$warmup" "$f.warmup.txt" || { cat "$f.warmup.txt" >&2; die "wrk failed against $s"; }
    R[$s,$c,load]=$(loadavg)
    t0=$(ticks "${pid[$s]}"); o0=$(ticks "${pid[$o]}"); read -r b0 tt0 st0 < <(sysstat)
    TIMEFORMAT='%U %S'
    if ! { time run_wrk "$s" "$c" "$duration" "$f.txt"; } 2>"$f.time"; then
      cat "$f.txt" >&2
      die "wrk failed against $s"
    fi
    t1=$(ticks "${pid[$s]}"); o1=$(ticks "${pid[$o]}"); read -r b1 tt1 st1 < <(sysstat)
    res=$(grep '^RESULT ' "$f.txt") || { cat "$f.txt" >&2; die "no RESULT line from wrk"; }
    for kv in ${res#RESULT }; do R[$s,$c,${kv%%=*}]=${kv#*=}; done
    errs=$((${R[$s,$c,connect]} + ${R[$s,$c,read]} + ${R[$s,$c,write]} + ${R[$s,$c,status]} + ${R[$s,$c,timeout]}))
    R[$s,$c,errors]=$errs
    if ((errs != 0)) || grep -q 'Non-2xx or 3xx responses' "$f.txt"; then
      cat "$f.txt" >&2
      die "$s at concurrency $c: $errs errors (non-2xx ${R[$s,$c,status]}); server log: $work/$s.log"
    fi
    ((${R[$s,$c,requests]} > 0)) || die "$s at concurrency $c: no request completed"
    read -r wu ws <"$f.time"
    n=${R[$s,$c,requests]}
    R[$s,$c,rps]=$(awk -v n="$n" -v d="${R[$s,$c,duration_us]}" 'BEGIN {printf "%.0f", n / (d / 1e6)}')
    R[$s,$c,p50]=$(awk -v x="${R[$s,$c,p50_us]}" 'BEGIN {printf "%.2f", x / 1000}')
    R[$s,$c,p99]=$(awk -v x="${R[$s,$c,p99_us]}" 'BEGIN {printf "%.2f", x / 1000}')
    R[$s,$c,cpu]=$(awk -v t=$((t1 - t0)) -v h="$clk_tck" -v n="$n" 'BEGIN {printf "%.0f", t / h * 1e6 / n}')
    R[$s,$c,wrkcpu]=$(awk -v u="$wu" -v s="$ws" -v n="$n" 'BEGIN {printf "%.0f", (u + s) * 1e6 / n}')
    # CPU used by everything else on the machine during the run, in % of all vCPUs:
    # busy ticks from /proc/stat minus both servers and wrk.
    R[$s,$c,other]=$(awk -v b=$((b1 - b0)) -v t=$((tt1 - tt0)) -v srv=$((t1 - t0 + o1 - o0)) \
      -v w="$(awk -v u="$wu" -v s="$ws" 'BEGIN {print u + s}')" -v h="$clk_tck" \
      'BEGIN {o = (b - srv - w * h) / t * 100; if (o < 0) o = 0; printf "%.0f", o}')
    R[$s,$c,steal]=$(awk -v s=$((st1 - st0)) -v t=$((tt1 - tt0)) 'BEGIN {printf "%.1f", s / t * 100}')
    R[$s,$c,hwm]=$(kib "${pid[$s]}" VmHWM)
    log "$s c=$c: ${R[$s,$c,rps]} req/s, p50 ${R[$s,$c,p50]} ms, p99 ${R[$s,$c,p99]} ms, ${R[$s,$c,cpu]} µs CPU/req, other load ${R[$s,$c,other]}%"
  done
done
declare -A hwm
for s in "${servers[@]}"; do hwm[$s]=$(kib "${pid[$s]}" VmHWM); done
for s in "${servers[@]}"; do stop "${pid[$s]}"; done

# ---------------------------------------------------------------- the floors
# Issue 18's yardstick: session-ca's CPU per issuance against a trivial axum
# JSON endpoint on the same stack (benches/baseline.rs, alone on the
# machine, same wrk runs) plus the crypto floor (one P-256 key generation
# and one signature, measured on one thread).
floor_cs=()
for c in $concurrencies; do [[ $c == 8 || $c == 64 ]] && floor_cs+=("$c"); done
declare -A T   # T[name,c,field] and T[floor,field]
# measure_alone NAME PID C: a warm-up and a measured wrk run against NAME
# (its process PID, alone on the machine): T[NAME,C,rps] and T[NAME,C,cpu].
measure_alone() {
  local name=$1 p=$2 c=$3 f=$work/runs/$1-c$3 t0 t1 res kv errs
  log "$name, concurrency $c: ${warmup} s warm-up, ${duration} s measured"
  run_wrk "$name" "$c" "$warmup" "$f.warmup.txt" || { cat "$f.warmup.txt" >&2; die "wrk failed against $name"; }
  t0=$(ticks "$p")
  run_wrk "$name" "$c" "$duration" "$f.txt" || { cat "$f.txt" >&2; die "wrk failed against $name"; }
  t1=$(ticks "$p")
  res=$(grep '^RESULT ' "$f.txt") || { cat "$f.txt" >&2; die "no RESULT line from wrk"; }
  for kv in ${res#RESULT }; do T[$name,$c,${kv%%=*}]=${kv#*=}; done
  errs=$((${T[$name,$c,connect]} + ${T[$name,$c,read]} + ${T[$name,$c,write]} + ${T[$name,$c,status]} + ${T[$name,$c,timeout]}))
  ((errs == 0 && ${T[$name,$c,requests]} > 0)) || { cat "$f.txt" >&2; die "$name at concurrency $c: $errs errors"; }
  T[$name,$c,rps]=$(awk -v n="${T[$name,$c,requests]}" -v d="${T[$name,$c,duration_us]}" 'BEGIN {printf "%.0f", n / (d / 1e6)}')
  T[$name,$c,cpu]=$(awk -v t=$((t1 - t0)) -v h="$clk_tck" -v n="${T[$name,$c,requests]}" 'BEGIN {printf "%.1f", t / h * 1e6 / n}')
  log "$name c=$c: ${T[$name,$c,rps]} req/s, ${T[$name,$c,cpu]} µs CPU/req"
}
if ((${#floor_cs[@]})); then
  # The trivial endpoint.
  port[baseline]=$(free_port)
  mkdir -p "$work/baseline"
  (cd "$work/baseline" && exec "$baseline_bin" serve "127.0.0.1:${port[baseline]}") >"$work/baseline.log" 2>&1 &
  tpid=$!
  pids+=("$tpid")
  wait_ok baseline "${port[baseline]}" "$tpid"
  for c in "${floor_cs[@]}"; do measure_alone baseline "$tpid" "$c"; done
  stop "$tpid"
  # session-ca as above but with its ledger off (SESSION_CA_STORE__URL=none):
  # what the embedded default's ledger costs, from the same sitting.
  port[no-ledger]=$(free_port)
  mkdir -p "$work/no-ledger"
  ln -s ../ca "$work/no-ledger/signer-key"
  (cd "$work/no-ledger" && SESSION_CA_STORE__URL=none exec "$bin" serve --listen "127.0.0.1:${port[no-ledger]}") >"$work/no-ledger.log" 2>&1 &
  npid=$!
  pids+=("$npid")
  wait_ok no-ledger "${port[no-ledger]}" "$npid"
  for c in "${floor_cs[@]}"; do measure_alone no-ledger "$npid" "$c"; done
  stop "$npid"
  floor_out=$("$baseline_bin" floor) || die "baseline floor failed"
  for kv in ${floor_out#RESULT }; do T[floor,${kv%%=*}]=${kv#*=}; done
  log "crypto floor: ${T[floor,floor_us]} µs (key generation ${T[floor,keygen_us]} + signature ${T[floor,sign_us]}, ${T[floor,library]})"
  for c in "${floor_cs[@]}"; do
    T[$c,ratio]=$(awk -v s="${R[session-ca,$c,cpu]}" -v t="${T[baseline,$c,cpu]}" -v f="${T[floor,floor_us]}" 'BEGIN {printf "%.2f", s / (t + f)}')
    T[$c,ratio_off]=$(awk -v s="${T[no-ledger,$c,cpu]}" -v t="${T[baseline,$c,cpu]}" -v f="${T[floor,floor_us]}" 'BEGIN {printf "%.2f", s / (t + f)}')
    T[$c,ledger]=$(awk -v on="${R[session-ca,$c,rps]}" -v off="${T[no-ledger,$c,rps]}" 'BEGIN {printf "%.2f", on / off}')
    log "c=$c: session-ca ÷ (trivial endpoint + crypto floor) ${T[$c,ratio]} (ledger off: ${T[$c,ratio_off]}); req/s ledger on ÷ off ${T[$c,ledger]}"
  done
fi
load_end=$(loadavg)

# ---------------------------------------------------------------- chart
dat=$work/results.dat
for c in $concurrencies; do
  echo "$c ${R[session-ca,$c,rps]} ${R[cfssl,$c,rps]} ${R[session-ca,$c,p50]} ${R[cfssl,$c,p50]} ${R[session-ca,$c,p99]} ${R[cfssl,$c,p99]}"
done >"$dat"
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mkdir -p "$(dirname "$out")"
gnuplot -e "datafile='$dat'; outfile='$work/performance.png'; subtitle='$date_start, $ncpu vCPU $cpu_model, wrk on the same machine, ${duration} s per run'" \
  "$here/chart.gp" || die "gnuplot"

# ---------------------------------------------------------------- the document
rev=$(git -C "$root" rev-parse --short=12 HEAD)
dirty=$(git -C "$root" status --porcelain -- src crates Cargo.toml Cargo.lock build.rs | awk '{print $2}' | paste -sd ' ' -)
pkgver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "?"; }
wrk_version=$({ wrk -v 2>&1 || true; } | awk 'NR == 1 {sub(/^debian\//, "", $2); sub(/-.*/, "", $2); print $2}')
mem_total=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ms_med() { median ${cold[$1]}; }
range() { tr ' ' '\n' <<<"$*" | sed '/^$/d' | sort -g | sed -n '1p;$p' | paste -sd '-' - | sed 's/-/–/'; }
met() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {ok = (op == "<=") ? (a <= b) : (a >= b); print ok ? "**met**" : "**not met**"}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a / b}'; }
last_c=${concurrencies##* }

doc=$work/performance.md
{
  echo "# session-ca vs cfssl: HTTP issuance under load"
  echo
  echo "Generated by [\`benches/compare.sh\`](../benches/compare.sh) on $date_start. Both servers"
  echo "generate a fresh ECDSA P-256 key and sign a client certificate (digital"
  echo "signature, clientAuth, ~5 minutes) with **the same P-256 CA** on every request,"
  echo "over plain HTTP/1.1 keep-alive on loopback."
  echo
  echo "## Machine and versions"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| CPU | $ncpu vCPU ($cpu_model), shared; $mem_total RAM |"
  echo "| kernel | $(uname -sr), $(. /etc/os-release && echo "$PRETTY_NAME") |"
  echo "| session-ca | git $rev${dirty:+ (plus uncommitted changes in: $dirty)}, \`cargo build --release --locked\`, $(rustc --version 2>/dev/null | awk '{print $1, $2}') |"
  echo "| cfssl | $cfssl_version (Debian golang-cfssl $(pkgver golang-cfssl), $(cfssl version | awk '/^Runtime:/ {print $2}')) |"
  echo "| wrk | $wrk_version (Debian $(pkgver wrk)) |"
  echo "| load average (1, 5, 15 min) | at start: $load_start; at the end: $load_end |"
  echo
  echo "**The load generator shares the machine.** wrk runs on the same $ncpu vCPUs as the"
  echo "server under test (threads = min(concurrency, 2)), so every figure below is for"
  echo "server + client on $ncpu vCPUs; the *wrk CPU/req* column shows what the client"
  echo "took. *Other CPU* is what everything else on the machine (other users'"
  echo "jobs) used during the measured run, in % of all $ncpu vCPUs (busy ticks of"
  echo "\`/proc/stat\` minus both servers and wrk); *steal* is the hypervisor's. The"
  echo "load averages above include this benchmark's own processes (about 2–3"
  echo "runnable threads while wrk runs)."
  echo
  echo "## Results"
  echo
  echo "${duration} s measured per run after a ${warmup} s warm-up run (discarded), session-ca"
  echo "then cfssl at each concurrency, one long-running process per server for all"
  echo "runs. Latencies from wrk's histogram (not corrected for coordinated omission)."
  echo "No run had a non-2xx response or a socket error (the script stops otherwise)."
  echo
  echo "| server | concurrency | req/s | p50 ms | p99 ms | errors | server CPU µs/req | wrk CPU µs/req | other CPU | steal | load avg at start of run |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for c in $concurrencies; do
    for s in "${servers[@]}"; do
      echo "| $s | $c | ${R[$s,$c,rps]} | ${R[$s,$c,p50]} | ${R[$s,$c,p99]} | ${R[$s,$c,errors]} | ${R[$s,$c,cpu]} | ${R[$s,$c,wrkcpu]} | ${R[$s,$c,other]} % | ${R[$s,$c,steal]} % | ${R[$s,$c,load]} |"
    done
  done
  echo
  echo "| server | cold start, median of $cold_starts (range) | peak RSS during cold start (first issuance) | peak RSS after all load runs (VmHWM) |"
  echo "|---|---:|---:|---:|"
  for s in "${servers[@]}"; do
    echo "| $s | **$(ms_med "$s") ms** ($(range ${cold[$s]}) ms) | $(mib "$(median ${cold_rss[$s]})") MiB | **$(mib "${hwm[$s]}") MiB** |"
  done
  echo
  echo "Cold start: from just before the spawn (bash \`\$EPOCHREALTIME\`) to the end of the"
  echo "status line of the first successful issuance (session-ca 201, cfssl 200), polled"
  echo "in a tight loop from bash over \`/dev/tcp\` with the same request as the load."
  echo "A tight loop of \`curl\` was not used: one curl run (spawn to exit, one issuance"
  echo "from the warm session-ca) took $curl_ms ms here (median of 5: ${curl_runs[*]} ms),"
  echo "and most of that would be added to what is measured."
  echo
  echo "![req/s and p99 per concurrency, session-ca and cfssl](performance.png)"
  echo
  echo "### session-ca / cfssl"
  echo
  echo "| concurrency | throughput (req/s) | p99 latency (cfssl ÷ session-ca) | server CPU per request (cfssl ÷ session-ca) |"
  echo "|---:|---:|---:|---:|"
  for c in $concurrencies; do
    echo "| $c | **$(ratio "${R[session-ca,$c,rps]}" "${R[cfssl,$c,rps]}")×** | $(ratio "${R[cfssl,$c,p99]}" "${R[session-ca,$c,p99]}")× | $(ratio "${R[cfssl,$c,cpu]}" "${R[session-ca,$c,cpu]}")× |"
  done
  echo
  echo "## Targets"
  echo
  echo "| target | measured | |"
  echo "|---|---|---|"
  for c in 8 64; do
    [[ -n ${R[session-ca,$c,rps]:-} ]] || continue
    r=$(ratio "${R[session-ca,$c,rps]}" "${R[cfssl,$c,rps]}")
    echo "| throughput ≥ 6× cfssl at concurrency $c | $r× (${R[session-ca,$c,rps]} vs ${R[cfssl,$c,rps]} req/s) | $(met "$r" '>=' 6) |"
  done
  if [[ -n ${R[session-ca,64,p99]:-} ]]; then
    echo "| p99 ≤ 10 ms at concurrency 64 | ${R[session-ca,64,p99]} ms | $(met "${R[session-ca,64,p99]}" '<=' 10) |"
  fi
  worst=$(for c in $concurrencies; do echo "${R[session-ca,$c,cpu]}"; done | sort -g | tail -n 1)
  echo "| server CPU ≤ 75 µs per HTTP issuance (every concurrency) | $(for c in $concurrencies; do printf '%s µs at %s, ' "${R[session-ca,$c,cpu]}" "$c"; done | sed 's/, $//') | $(met "$worst" '<=' 75) |"
  echo "| cold start (spawn → first 201) ≤ 10 ms | $(ms_med session-ca) ms (median) | $(met "$(ms_med session-ca)" '<=' 10) |"
  echo "| peak RSS ≤ 16 MiB | $(mib "${hwm[session-ca]}") MiB | $(met "$(mib "${hwm[session-ca]}")" '<=' 16) |"
  for c in "${floor_cs[@]}"; do
    echo "| server CPU per issuance ÷ (trivial endpoint + crypto floor) ≤ 1.5 at concurrency $c | ${T[$c,ratio]} (ledger off: ${T[$c,ratio_off]}) | $(met "${T[$c,ratio]}" '<=' 1.5) |"
  done
  for c in "${floor_cs[@]}"; do
    [[ $c == 64 ]] || continue
    echo "| req/s with the embedded ledger ÷ without ≥ 0.8 at concurrency $c | ${T[$c,ledger]} (${R[session-ca,$c,rps]} vs ${T[no-ledger,$c,rps]}) | $(met "${T[$c,ledger]}" '>=' 0.8) |"
  done
  echo
  echo "For reference, the figures quoted in the issue for cfssl 1.2 on the same kind"
  echo "of machine: ≈ 1.6k req/s at concurrency 1 (p50 0.55 ms), ≈ 3.3k req/s at 8 and"
  echo "64 (p99 22 ms and 180 ms), ≈ 550 µs server CPU per request, 18 MiB peak RSS,"
  echo "14 ms cold start."
  echo
  if ((${#floor_cs[@]})); then
    echo "## Against the floor"
    echo
    echo "What an issuance cannot cost less than on this stack: the CPU per request"
    echo "of a trivial axum endpoint (\`cargo build --release --example baseline\`,"
    echo "[\`benches/baseline.rs\`](../benches/baseline.rs): the same runtime, axum and"
    echo "hyper, reads and parses session-ca's JSON request and answers 201 with a"
    echo "small JSON object), run alone under the same wrk runs, plus the crypto"
    echo "floor: one P-256 key generation (${T[floor,keygen_us]} µs) and one ECDSA P-256"
    echo "signature by a parsed CA key over 500 octets (${T[floor,sign_us]} µs), ${T[floor,library]},"
    echo "each the median of 5 rounds on one thread's own CPU clock."
    echo
    echo "session-ca runs as in the results above (its embedded default, which"
    echo "records every certificate in the SQLite ledger beside the CA) and once more"
    echo "with the ledger off (\`SESSION_CA_STORE__URL=none\`), alone, after the"
    echo "comparison runs."
    echo
    echo "| concurrency | session-ca CPU µs/req: ledger on / off | trivial endpoint CPU µs/req (req/s) | crypto floor µs | session-ca ÷ (endpoint + floor): ledger on / off | target ≤ 1.5 | req/s: ledger on / off (ratio) |"
    echo "|---:|---:|---:|---:|---:|---|---:|"
    for c in "${floor_cs[@]}"; do
      echo "| $c | ${R[session-ca,$c,cpu]} / ${T[no-ledger,$c,cpu]} | ${T[baseline,$c,cpu]} (${T[baseline,$c,rps]}) | ${T[floor,floor_us]} | **${T[$c,ratio]}** / ${T[$c,ratio_off]} | $(met "${T[$c,ratio]}" '<=' 1.5) | ${R[session-ca,$c,rps]} / ${T[no-ledger,$c,rps]} (${T[$c,ledger]}) |"
    done
    echo
  fi
  echo "## What was run"
  echo
  echo "One CA, made by \`session-ca init --dir ca\` (P-256, PKCS#8). session-ca runs in"
  echo "a directory where \`signer-key\` is that CA (the embedded default configuration:"
  echo "profile \`default\`, auth none, loopback); cfssl gets the same certificate and"
  echo "the same key converted to SEC1 with \`openssl ec -in ca/ca-key.pem -out ca-key.pem\`."
  echo "Both servers log every issuance at their default level (session-ca one JSON"
  echo "audit line, cfssl seven lines) to a file."
  echo
  echo '```sh'
  echo "# session-ca (in its directory), then cfssl (in its directory)"
  echo "$(server_cmd session-ca "${port[session-ca]}" | sed "s|$root/||")"
  echo "$(server_cmd cfssl "${port[cfssl]}")"
  echo "# load, per concurrency C in: $concurrencies (session-ca, then cfssl); COMPARE_BODY names the JSON body"
  for s in "${servers[@]}"; do
    echo "COMPARE_BODY=${bodyfile[$s]#"$root"/} wrk -t\$T -c\$C -d${duration}s --timeout 10s --latency -s benches/compare/post.lua http://127.0.0.1:${port[$s]}${path[$s]}"
  done
  echo "# T = min(C, 2); the same with -d${warmup}s first, as warm-up"
  echo '```'
  echo
  echo "Request bodies: session-ca \`$(<"${bodyfile[session-ca]}")\`;"
  echo "cfssl \`$(<"${bodyfile[cfssl]}")\`. cfssl profile"
  echo "([\`benches/compare/cfssl-config.json\`](../benches/compare/cfssl-config.json)):"
  echo "usages digital signature and client auth, expiry \`10m\`."
  echo
  echo "Before the load, one certificate from each server was checked at $check_time UTC with"
  echo "\`openssl verify -x509_strict -purpose sslclient -CAfile ca/chain.pem\`, P-256 key, key matching"
  echo "the certificate:"
  echo
  for s in "${servers[@]}"; do echo "- $s: ${certinfo[$s]}"; done
  echo
  echo "## Notes"
  echo
  echo "- cfssl 1.2 backdates \`notBefore\` by 5 minutes and counts the profile's"
  echo "  expiry from the backdated time, so with \`\"expiry\": \"5m\"\` it issues a"
  echo "  certificate that has already expired (\`openssl verify\`: *certificate has"
  echo "  expired*). The profile uses \`10m\`, which gives about 5 minutes of validity"
  echo "  from the moment of issuance, like session-ca's default (5 minutes, 30 s backdate)."
  echo "- cfssl answers \`newcert\` with 200 and the certificate, key and CSR in"
  echo "  \`result\`; session-ca answers 201 with the certificate, key and CA chain."
  echo "- Server CPU per request is the utime+stime delta of the server process over"
  echo "  the measured run (\`/proc/PID/stat\`, $clk_tck ticks/s) divided by the requests"
  echo "  wrk completed. At concurrency 1 the server waits for every request, so each"
  echo "  one also pays for waking its threads (more context switches per request):"
  echo "  CPU per request is usually highest there."
} >"$doc"

mv "$work/performance.png" "$png"
mv "$doc" "$out"
log "wrote $out and $png"
