#!/usr/bin/env bash
# Load test: `session-ca serve` (release build, JSON logs) on loopback,
# driven by oha (HTTP load generator from crates.io, pinned, installed into
# target/tools). One server process serves a 10,000-request run, then a
# 100,000-request run, both at concurrency 64, each POSTing the same JSON
# issuance request (server-generated P-256 key).
#
# Checked (the script fails otherwise):
#   - every response of both runs is 201 and oha saw no transport error;
#   - the audit log has exactly one certificate_issued event per request,
#     no issuance_denied, and every serial number is distinct.
# Recorded: req/s, p50/p99 latency of the big run, and the server's peak RSS
# (VmHWM) after the 10k run and after the 100k run, to show it stays flat.
#
# The results go to docs/load.md (a Markdown table) and stdout.
#
#   benches/load.sh                    (100000 requests, concurrency 64)
#   REQUESTS=20000 WARMUP=2000 CONCURRENCY=32 OUT=/tmp/load.md benches/load.sh
#
# Needs cargo and python3 (nothing else); the first run compiles oha (a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

requests=${REQUESTS:-100000}
warmup=${WARMUP:-10000}
concurrency=${CONCURRENCY:-64}
out=${OUT:-$root/docs/load.md}
oha_version=1.16.0
tools="$root/target/tools"
oha="$tools/bin/oha"

command -v python3 >/dev/null || { echo "load.sh needs python3" >&2; exit 1; }

if ! "$oha" --version 2>/dev/null | grep -qF "$oha_version"; then
  echo "installing oha $oha_version into $tools" >&2
  cargo install --locked --quiet --root "$tools" "oha@$oha_version"
fi
cargo build --quiet --release --bin session-ca
bin="$root/target/release/session-ca"

work=$(mktemp -d)
server=""
cleanup() {
  if [[ -n $server ]]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
url="http://127.0.0.1:$port"

# A P-256 CA (the default) in the work directory, and the embedded default
# configuration (auth none, loopback, profile "default") reading it.
"$bin" init --dir "$work/signer-key" >/dev/null 2>&1
(cd "$work" && SESSION_CA_LOG_FORMAT=json SESSION_CA_LOG=info exec "$bin" serve --listen "127.0.0.1:$port" 2>"$work/server.log") &
server=$!
healthy() { python3 -c 'import sys, urllib.request as u; u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=2)' "$url/healthz" 2>/dev/null; }
for _ in $(seq 100); do
  healthy && break
  kill -0 "$server" 2>/dev/null || { echo "session-ca serve exited:" >&2; cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
healthy || { echo "session-ca serve is not healthy:" >&2; cat "$work/server.log" >&2; exit 1; }

body='{"session_id":"92fea10a-0905-40cc-aca1-54ee52e89c71","transaction_id":"tx-load","claims":{"agent":"oha load test"}}'
run_oha() { # N OUTPUT.json
  "$oha" --no-tui --output-format json -n "$1" -c "$concurrency" -m POST \
    -H "content-type: application/json" -d "$body" "$url/v1/certificates" >"$2"
}
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$server/status"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$server/status"; }

loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)
start_hwm=$(hwm_kib)
echo "warm-up: $warmup requests at concurrency $concurrency" >&2
run_oha "$warmup" "$work/warmup.json"
hwm_10k=$(hwm_kib)
rss_10k=$(rss_kib)
echo "main run: $requests requests at concurrency $concurrency" >&2
run_oha "$requests" "$work/main.json"
hwm_100k=$(hwm_kib)
rss_100k=$(rss_kib)

# Stop the server cleanly so every log line is written.
kill -TERM "$server"
wait "$server" || true
server=""

mkdir -p "$(dirname "$out")"
export loadavg_before work warmup requests concurrency start_hwm hwm_10k rss_10k hwm_100k rss_100k out oha_version
export command_line="oha --no-tui --output-format json -n $requests -c $concurrency -m POST -H 'content-type: application/json' -d '$body' http://127.0.0.1:PORT/v1/certificates"
python3 - <<'PY'
import json, os, platform, subprocess, sys, datetime

e = os.environ
work = e["work"]
warm = json.load(open(f"{work}/warmup.json"))
main = json.load(open(f"{work}/main.json"))
warmup, requests, conc = int(e["warmup"]), int(e["requests"]), int(e["concurrency"])

failures = []
def check_run(name, res, n):
    codes = res["statusCodeDistribution"]
    errors = res["errorDistribution"]
    if codes != {"201": n} or errors:
        failures.append(f"{name}: status codes {codes}, transport errors {errors} (want 201 x {n})")
    return codes, errors
codes_w, errors_w = check_run("warm-up run", warm, warmup)
codes_m, errors_m = check_run("main run", main, requests)

issued, denied, serials, other_errors = 0, 0, set(), 0
for line in open(f"{work}/server.log"):
    try:
        ev = json.loads(line)
    except ValueError:
        failures.append(f"a log line is not JSON: {line[:200]!r}")
        continue
    if ev.get("event") == "certificate_issued":
        issued += 1
        serials.add(ev["serial"])
    elif ev.get("event") == "issuance_denied":
        denied += 1
    elif ev.get("level") == "ERROR":
        other_errors += 1
total = warmup + requests
if issued != total:
    failures.append(f"{issued} certificate_issued events for {total} requests")
if denied:
    failures.append(f"{denied} issuance_denied events")
if other_errors:
    failures.append(f"{other_errors} ERROR log events")
if len(serials) != issued:
    failures.append(f"{issued - len(serials)} repeated serial numbers")

def ms(seconds):
    return f"{seconds * 1000:.2f} ms"
def mib(kib):
    return f"{int(kib) / 1024:.1f} MiB"
p = main["latencyPercentiles"]
s = main["summary"]
hwm_10k, hwm_100k = int(e["hwm_10k"]), int(e["hwm_100k"])
growth = (hwm_100k - hwm_10k) / hwm_10k * 100

cpu = "unknown CPU"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
vcpus = os.cpu_count()
rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
today = datetime.date.today().isoformat()
outcome = "PASS" if not failures else "FAIL: " + "; ".join(failures)

md = f"""# Load test: `session-ca serve`

Produced by [`benches/load.sh`](../benches/load.sh) (rerun it to refresh this file).
One `session-ca serve` process (release build, embedded default configuration,
P-256 CA from `session-ca init`, auth `none`, JSON logs with one audit event per
certificate written to a file) on loopback, driven by oha on the same machine, so
the load generator and the server share the {vcpus} vCPUs. Every request is
`POST /v1/certificates` with a server-generated ECDSA P-256 key. The same process
first serves a {warmup:,}-request run, then the {requests:,}-request run measured
below; the peak RSS (VmHWM in `/proc/PID/status`) is read after each.

| | |
|---|---|
| date | {today} |
| machine | {vcpus} vCPU ({cpu}), {platform.system()} {platform.release()}; shared with other work (load average {e["loadavg_before"]} just before the runs) |
| build | `cargo build --release` ({rustc}), thin LTO |
| tool | oha {e["oha_version"]} (`cargo install --locked oha@{e["oha_version"]}`) |
| command | `{e["command_line"]}` |
| outcome | {outcome} |

| measure | {warmup:,} requests (warm-up run) | {requests:,} requests (measured run) |
|---|---|---|
| concurrency | {conc} | {conc} |
| responses | {", ".join(f"{v:,} × {k}" for k, v in codes_w.items())} | {", ".join(f"{v:,} × {k}" for k, v in codes_m.items())} |
| errors (non-201 or transport) | {warmup - codes_w.get("201", 0) + sum(errors_w.values()):,} | {requests - codes_m.get("201", 0) + sum(errors_m.values()):,} |
| throughput | {warm["summary"]["requestsPerSec"]:,.0f} req/s | {s["requestsPerSec"]:,.0f} req/s |
| latency p50 | {ms(warm["latencyPercentiles"]["p50"])} | {ms(p["p50"])} |
| latency p90 | {ms(warm["latencyPercentiles"]["p90"])} | {ms(p["p90"])} |
| latency p99 | {ms(warm["latencyPercentiles"]["p99"])} | {ms(p["p99"])} |
| latency max | {ms(warm["summary"]["slowest"])} | {ms(s["slowest"])} |
| duration | {warm["summary"]["total"]:.1f} s | {s["total"]:.1f} s |
| server peak RSS (VmHWM) after the run | {mib(hwm_10k)} | {mib(hwm_100k)} ({growth:+.1f} %) |
| server RSS (VmRSS) after the run | {mib(e["rss_10k"])} | {mib(e["rss_100k"])} |

Peak RSS before the first request: {mib(e["start_hwm"])}.
Audit log: {issued:,} `certificate_issued` events for {total:,} requests,
{len(serials):,} distinct serial numbers, {denied} `issuance_denied`.
"""
open(e["out"], "w").write(md)
print(md)
if failures:
    print("FAILED: " + "; ".join(failures), file=sys.stderr)
    sys.exit(1)
PY
