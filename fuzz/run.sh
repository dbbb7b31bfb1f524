#!/usr/bin/env bash
# Runs the fuzz targets one after another, each for SECONDS (default 600),
# prints executions, coverage and findings per target, then minimises each
# target's corpus (fuzz/corpus/<target>/): `cargo fuzz cmin` on edge
# coverage, then, above FUZZ_CORPUS_MAX files (200), the files that together
# reach the most edges (needs python3), so the committed corpus stays small.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     (all targets when none is named)
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs
# cargo-fuzz if missing. Full libFuzzer logs go to fuzz/logs/<target>.log
# and findings to fuzz/artifacts/<target>/ (both git-ignored). Exits 1 if
# any target found a crash, timeout, out-of-memory or leak.
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
NICENESS=${FUZZ_NICE:-10}
CORPUS_MAX=${FUZZ_CORPUS_MAX:-200}
max_time=${1:-600}
shift || true
case $max_time in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "+$TOOLCHAIN" fuzz list)
fi

nice -n "$NICENESS" cargo "+$TOOLCHAIN" fuzz build
mkdir -p fuzz/logs

# The value of `stat::NAME: VALUE` in a libFuzzer log (-print_final_stats=1).
final_stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }

found=0
summary=()
for target in "${targets[@]}"; do
    log=fuzz/logs/$target.log
    artifacts=fuzz/artifacts/$target
    mkdir -p "$artifacts"
    before=$(find "$artifacts" -type f | wc -l)
    echo "== $target: fuzzing for ${max_time}s (log: $log)"
    status=0
    nice -n "$NICENESS" cargo "+$TOOLCHAIN" fuzz run "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$max_time" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        >"$log" 2>&1 || status=$?
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    new=$(($(find "$artifacts" -type f | wc -l) - before))
    line="$target: executions=$(final_stat number_of_executed_units "$log") exec/s=$(final_stat average_exec_per_sec "$log") cov=${cov:-?} ft=${ft:-?} corpus=$(find "fuzz/corpus/$target" -type f | wc -l) new_artifacts=$new exit=$status"
    echo "$line"
    summary+=("$line")
    if [ "$status" -ne 0 ] || [ "$new" -gt 0 ]; then
        found=1
        echo "!! $target: finding; see $log and $artifacts/:" >&2
        ls -l "$artifacts" >&2
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -n 5 >&2 || true
    fi
done

# Keeps at most $2 files of corpus $1 that together reach the most edges
# (greedy set cover over a libFuzzer merge control file; with
# -set_cover_merge its FT lines list every feature of a file, not only the
# new ones), deleting the rest.
cap_corpus() {
    local target=$1 max=$2 scratch
    scratch=$(mktemp -d)
    mkdir "$scratch/merged"
    nice -n "$NICENESS" cargo "+$TOOLCHAIN" fuzz run "$target" "$scratch/merged" "$root/fuzz/corpus/$target" -- \
        -set_cover_merge=1 -use_counters=0 -merge_control_file="$scratch/control" \
        >"fuzz/logs/$target.cap.log" 2>&1
    python3 - "$scratch/control" "$max" <<'PY'
import heapq, os, sys
lines = open(sys.argv[1]).read().splitlines()
count, limit = int(lines[0]), int(sys.argv[2])
paths, features = lines[2:2 + count], {}
for line in lines[2 + count:]:
    kind, index, *rest = line.split()
    if kind == "FT":
        features[int(index)] = set(rest)
every = set().union(*features.values())
covered, keep = set(), set()
heap = [(-len(f), i) for i, f in features.items()]
heapq.heapify(heap)
while heap and len(keep) < limit:
    gain, i = heapq.heappop(heap)
    new = len(features[i] - covered)
    if new == 0:
        continue
    if heap and new < -heap[0][0]:
        heapq.heappush(heap, (-new, i))
        continue
    keep.add(i)
    covered |= features[i]
for i, path in enumerate(paths):
    if i not in keep:
        os.remove(path)
print(f"kept {len(keep)} of {count} files, reaching {len(covered)} of {len(every)} edges")
PY
    rm -rf "$scratch"
}

for target in "${targets[@]}"; do
    echo "== $target: minimising the corpus"
    # Set cover on edges (no hit counts): a much smaller corpus that still
    # reaches every edge the fuzzer reached.
    nice -n "$NICENESS" cargo "+$TOOLCHAIN" fuzz cmin "$target" "fuzz/corpus/$target" -- \
        -set_cover_merge=1 -use_counters=0 >"fuzz/logs/$target.cmin.log" 2>&1
    if [ "$(find "fuzz/corpus/$target" -type f | wc -l)" -gt "$CORPUS_MAX" ]; then
        cap_corpus "$target" "$CORPUS_MAX"
    fi
    echo "$target: corpus after cmin: $(find "fuzz/corpus/$target" -type f | wc -l) files, $(du -sk "fuzz/corpus/$target" | cut -f1) KiB"
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$found"
