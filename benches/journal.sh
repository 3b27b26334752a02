#!/usr/bin/env bash
# Does a long history slow cnm down? Applies and destroys scripts/fleet.cnm CYCLES times
# (200 by default) in one state directory, then times `cnm show` and a no-op
# `cnm apply` there and in a fresh state directory that holds the same state, and prints
# the medians and the ratios long-history / fresh (the goal: at most 1.5x); `cnm log`
# against a history that just fills its page. Also prints
# the journal's size on disk, and how it is split into archives.
#
#   benches/journal.sh [ CYCLES ] [ RUNS ]
#
# Runs inside a throwaway user + network + mount namespace with a tmpfs on /run: no root
# needed, the host is untouched. CNM=path/to/cnm picks the binary (default: a release
# build of this tree).
set -euo pipefail

CYCLES=${1:-200}
RUNS=${2:-21}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [ "${CNM_BENCH_INSIDE:-}" != 1 ]; then
    if [ -z "${CNM:-}" ]; then
        cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
        export CNM=$ROOT/target/release/cnm
    fi
    export CNM_BENCH_INSIDE=1
    exec unshare --user --map-root-user --net --mount --propagation private \
        sh -c 'mount -t tmpfs tmpfs /run && exec "$0" "$@"' "$0" "$CYCLES" "$RUNS"
fi

W=/run/cnm-bench
mkdir -p "$W/etc"
ip link set lo up
export CNM_NETNS_DIR=/run/netns CNM_ETC_DIR=$W/etc
# The fleet without its expectations: their probes' time is not cnm's.
FLEET=$W/fleet.cnm
grep -v '^expect' "$ROOT/scripts/fleet.cnm" > "$FLEET"

now() { date +%s%N; }
ms() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.2f", (e - s) / 1000000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

# The median time of RUNS runs of a cnm command against state directory $1.
timed() {
    local dir=$1 times="" s e
    shift
    for _ in $(seq 1 "$RUNS"); do
        s=$(now); "$CNM" --state-dir "$dir" "$@" > /dev/null 2>&1; e=$(now)
        times="$times $(ms "$s" "$e")"
    done
    echo "$times" | median
}

LONG=$W/long
echo "applying and destroying $(basename "$FLEET") $CYCLES times..." >&2
s=$(now)
for _ in $(seq 1 "$CYCLES"); do
    "$CNM" --state-dir "$LONG" apply "$FLEET" > /dev/null 2>&1
    "$CNM" --state-dir "$LONG" destroy > /dev/null 2>&1
done
e=$(now)
echo "  took $(ms "$s" "$e") ms" >&2

# `cnm log` lists a page (the last 20 transactions): its fair baseline is a history
# just long enough to fill that page (ten cycles), not an empty one.
SHORT=$W/short
for _ in $(seq 1 10); do
    "$CNM" --state-dir "$SHORT" apply "$FLEET" > /dev/null 2>&1
    "$CNM" --state-dir "$SHORT" destroy > /dev/null 2>&1
done

# Both directories hold the fleet applied: one after the long history, one fresh (its
# state.json copied, no journal).
"$CNM" --state-dir "$LONG" apply "$FLEET" > /dev/null 2>&1
FRESH=$W/fresh
mkdir -p "$FRESH"
cp "$LONG/state.json" "$FRESH/state.json"

printf '%-22s %12s %12s %8s\n' command "fresh" "history" ratio
for cmd in show "apply $FLEET" "log" "plan $FLEET"; do
    base=$FRESH
    if [ "$cmd" = log ]; then base=$SHORT; fi
    # shellcheck disable=SC2086
    f=$(timed "$base" $cmd); l=$(timed "$LONG" $cmd)
    printf '%-22s %9s ms %9s ms %8s\n' "${cmd%% *}" "$f" "$l" "$(ratio "$l" "$f")"
done
echo "(log: fresh = a history of ten cycles, one page of \`cnm log\`)"
echo
echo "history: $(( $(cat "$LONG"/journal*.jsonl | wc -l) )) journal lines in $(ls "$LONG"/journal*.jsonl | wc -l) files, $(du -sh "$LONG" | cut -f1) on disk; journal.jsonl itself $(stat -c %s "$LONG/journal.jsonl") bytes"
