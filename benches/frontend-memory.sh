#!/usr/bin/env bash
# Peak memory and wall time of `cnm plan --json` on the benchmark's fleet: 10,000
# sandboxes on 10 networks, written out flat (20,010 lines), planned against an empty
# state. Issue 2's goal: under 100 MB peak RSS (and under 100 ms for the front end;
# `cargo bench --bench frontend` measures that in-process).
#
# For scale, the same run also measures a trivial process (`cat SCRIPT > /dev/null`).
#
# Usage: benches/frontend-memory.sh            (builds target/release/cnm first)
#        CNM_BIN=path/to/cnm benches/frontend-memory.sh   (skips the build)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [[ -z "${CNM_BIN:-}" ]]; then
    cargo build --release --bin cnm --quiet
    CNM_BIN=${CARGO_TARGET_DIR:-$root/target}/release/cnm
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/state"
script=$work/fleet.cnm

# The same topology as benches/frontend.rs's `flat` variant.
awk 'BEGIN {
    for (n = 1; n <= 10; n++) printf "network net%d subnet 10.%d.0.0/16\n", n, n
    for (n = 1; n <= 10; n++)
        for (i = 1; i <= 1000; i++) {
            printf "sandbox net%d-%d mode none\n", n, i
            printf "connect net%d-%d to net%d\n", n, i, n
        }
}' >"$script"
echo "script: $(wc -l <"$script") lines, $(wc -c <"$script") bytes"

fail() {
    echo "failed: $*" >&2
    cat "$work/stderr" >&2
    exit 1
}

# measure LABEL COMMAND… : prints peak RSS (MB) and wall time (ms) of COMMAND, whose
# output goes to /dev/null. Exit status 2 from `cnm plan` would only come with
# --detailed-exitcode; anything but 0 is a failure here. Without /usr/bin/time
# (`apt-get install time`), python3 reads the child's ru_maxrss.
measure() {
    local label=$1
    shift
    local rss_kb wall_s start
    if [[ -x /usr/bin/time ]]; then
        # /usr/bin/time's own wall clock has 10 ms steps: time it from here instead.
        start=$EPOCHREALTIME
        /usr/bin/time -v -o "$work/time.txt" "$@" >/dev/null 2>"$work/stderr" || fail "$@"
        wall_s=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')
        rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
    else
        read -r rss_kb wall_s < <(python3 - "$@" <<'EOF'
import resource, subprocess, sys, time
start = time.monotonic()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
wall = time.monotonic() - start
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, wall)
EOF
        )
    fi
    awk -v label="$label" -v kb="$rss_kb" -v s="$wall_s" \
        'BEGIN { printf "%-30s peak RSS %7.1f MB   wall %6.0f ms\n", label, kb / 1024, s * 1000 }'
}

measure "baseline (cat script)" cat "$script"
measure "cnm plan --json (10k flat)" "$CNM_BIN" --state-dir "$work/state" plan --json "$script"
# For a breakdown: the same without JSON, and the checker alone.
measure "cnm plan (10k flat)" "$CNM_BIN" --state-dir "$work/state" plan "$script"
measure "cnm check (10k flat)" "$CNM_BIN" --state-dir "$work/state" check "$script"
