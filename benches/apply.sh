#!/usr/bin/env bash
# Apply and destroy N sandboxes (each one veth on one bridge network, an address and a
# default route) with cnm, and do the same job with one `ip -batch` file per phase (as
# ../shared/peers/peer-ip-batch.sh does), in the same run, on the same machine. Prints
# median times and the ratios cnm / ip -batch.
#
#   benches/apply.sh [ "10 100 500" ] [ RUNS ]
#
# Runs inside a throwaway user + network + mount namespace with a tmpfs on /run: no root
# needed, the host is untouched. cnm's destroy waits until the kernel has removed the
# namespaces' interfaces; ip -batch's teardown does not, so it is timed with that wait
# ("settle") added, as the peers' reference figures do.
set -euo pipefail

NS=${1:-10 100 500}
RUNS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [ "${CNM_BENCH_INSIDE:-}" != 1 ]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
    export CNM_BENCH_INSIDE=1
    exec unshare --user --map-root-user --net --mount --propagation private \
        sh -c 'mount -t tmpfs tmpfs /run && exec "$0" "$@"' "$0" "$NS" "$RUNS"
fi

CNM=$ROOT/target/release/cnm
W=/run/cnm-bench
mkdir -p "$W/etc"
ip link set lo up
export CNM_STATE_DIR=$W/state CNM_NETNS_DIR=/run/netns CNM_ETC_DIR=$W/etc

now() { date +%s%N; }
ms() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.1f", (e - s) / 1000000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
ip_of() { local i=$(( $1 + 1 )); echo "10.88.$(( i / 256 )).$(( i % 256 ))"; }

# Wait until no veth and no namespace file is left.
settle() {
    while [ -n "$(ip -o link show type veth | head -1)" ] || [ -n "$(ls /run/netns 2>/dev/null | head -1)" ]; do
        sleep 0.002
    done
}

gen() {
    local n=$1 i
    mkdir -p "$W/$n"
    {
        echo "network bench subnet 10.88.0.0/16 bridge cnm-bench"
        echo "for i in 1..$n {"
        echo "    sandbox s\$i mode none"
        echo "    connect s\$i to bench"
        echo "}"
    } > "$W/$n/cnm.cnm"
    {
        echo "link add cnm-bench type bridge"
        echo "addr add 10.88.0.1/16 dev cnm-bench"
        echo "link set cnm-bench up"
        for i in $(seq 1 "$n"); do echo "netns add s$i"; done
        for i in $(seq 1 "$n"); do
            echo "link add vh$i type veth peer name eth0 netns s$i"
            echo "link set vh$i master cnm-bench up"
        done
    } > "$W/$n/root.batch"
    {
        echo "ip -batch $W/$n/root.batch"
        for i in $(seq 1 "$n"); do
            printf 'addr add %s/16 dev eth0\nlink set eth0 up\nroute add default via 10.88.0.1\n' \
                "$(ip_of "$i")" > "$W/$n/s$i.batch"
            echo "ip -n s$i -batch $W/$n/s$i.batch"
        done
    } > "$W/$n/setup.sh"
    {
        for i in $(seq 1 "$n"); do echo "netns del s$i"; done
        echo "link del cnm-bench"
    } > "$W/$n/teardown.batch"
}

printf '%-6s %12s %12s %8s   %12s %16s %8s\n' N "cnm apply" "ip -batch" ratio "cnm destroy" "ip -batch+settle" ratio
for n in $NS; do
    gen "$n"
    ca=""; cd=""; ia=""; id=""
    for _ in $(seq 1 "$RUNS"); do
        s=$(now); "$CNM" apply "$W/$n/cnm.cnm" > /dev/null 2>&1; e=$(now); ca="$ca $(ms "$s" "$e")"
        [ "$(ls /run/netns | wc -l)" = "$n" ] || { echo "cnm apply did not make $n namespaces" >&2; exit 1; }
        s=$(now); "$CNM" destroy > /dev/null 2>&1; e=$(now); cd="$cd $(ms "$s" "$e")"
        settle
        s=$(now); sh -e "$W/$n/setup.sh"; e=$(now); ia="$ia $(ms "$s" "$e")"
        s=$(now); ip -force -batch "$W/$n/teardown.batch" 2>/dev/null; settle; e=$(now); id="$id $(ms "$s" "$e")"
    done
    ca=$(echo "$ca" | median); cd=$(echo "$cd" | median); ia=$(echo "$ia" | median); id=$(echo "$id" | median)
    printf '%-6s %10s ms %10s ms %8s   %10s ms %14s ms %8s\n' "$n" "$ca" "$ia" \
        "$(ratio "$ca" "$ia")" "$cd" "$id" "$(ratio "$cd" "$id")"
done
