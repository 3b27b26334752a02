#!/usr/bin/env bash
# `cnm test scripts/seed.cnm` (apply the seed, run its expectations, tear down) against
# the same job done by hand, as a CI script would without cnm: in a throwaway network
# namespace of its own (as `cnm test` uses one, torn down by letting it go), one
# `ip -batch` file for the topology, an nftables rule that keeps the networks apart
# (refusing, as cnm's does, so that a ping that must fail gets its answer at once
# rather than waiting out its timeout), and `ping -c1 -W1` for each address probed. Both run with the host forwarding packets. Prints the median
# wall times and the ratio cnm / by hand.
#
#   benches/test-seed.sh [ RUNS ]
#
# Runs inside a throwaway user + network + mount namespace with a tmpfs on /run: no root
# needed, the host is untouched.
set -euo pipefail

RUNS=${1:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [ "${CNM_BENCH_INSIDE:-}" != 1 ]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
    export CNM_BENCH_INSIDE=1
    exec unshare --user --map-root-user --net --mount --propagation private \
        sh -c 'mount -t tmpfs tmpfs /run && exec "$0" "$@"' "$0" "$RUNS"
fi

CNM=$ROOT/target/release/cnm
W=/run/cnm-bench
mkdir -p "$W"
ip link set lo up
echo 1 > /proc/sys/net/ipv4/ip_forward

now() { date +%s%N; }
ms() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.1f", (e - s) / 1000000 }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

# The seed's topology: two networks, A on one, C on the other, B on both; three web
# sandboxes on the default network.
cat > "$W/up.batch" <<'BATCH'
link add cnm-backend type bridge
addr add 10.1.0.1/24 dev cnm-backend
link set cnm-backend up
link add cnm-frontend mtu 1400 type bridge
addr add 10.2.0.254/24 dev cnm-frontend
link set cnm-frontend up
link add cnm0 type bridge
addr add 172.30.0.1/16 dev cnm0
link set cnm0 up
netns add A
netns add B
netns add C
netns add web1
netns add web2
netns add web3
link add va type veth peer name eth0 netns A
link add vb1 type veth peer name eth0 netns B
link add vb2 mtu 1400 type veth peer name eth1 netns B
link add vc mtu 1400 type veth peer name eth0 netns C
link add vw1 type veth peer name eth0 netns web1
link add vw2 type veth peer name eth0 netns web2
link add vw3 type veth peer name eth0 netns web3
link set va master cnm-backend up
link set vb1 master cnm-backend up
link set vb2 master cnm-frontend up
link set vc master cnm-frontend up
link set vw1 master cnm0 up
link set vw2 master cnm0 up
link set vw3 master cnm0 up
BATCH
inside() { # NETNS ADDRESS IFNAME GATEWAY
    ip -n "$1" link set lo up
    ip -n "$1" addr add "$2" dev "$3"
    ip -n "$1" link set "$3" up
    if [ -n "${4:-}" ]; then ip -n "$1" route add default via "$4"; fi
}

by_hand() {
    ip -batch "$W/up.batch"
    inside A 10.1.0.2/24 eth0 10.1.0.1
    inside B 10.1.0.3/24 eth0 10.1.0.1
    inside B 10.2.0.1/24 eth1
    inside C 10.2.0.50/24 eth0 10.2.0.254
    inside web1 172.30.0.2/16 eth0 172.30.0.1
    inside web2 172.30.0.3/16 eth0 172.30.0.1
    inside web3 172.30.0.4/16 eth0 172.30.0.1
    nft -f - <<'NFT'
table inet iso {
    chain forward {
        type filter hook forward priority filter; policy accept;
        iifname . oifname { "cnm-backend" . "cnm-frontend", "cnm-frontend" . "cnm-backend", "cnm-backend" . "cnm0", "cnm0" . "cnm-backend", "cnm-frontend" . "cnm0", "cnm0" . "cnm-frontend" } reject with icmpx type admin-prohibited
    }
}
NFT
    ip netns exec A ping -c1 -W1 10.1.0.3 >/dev/null
    ip netns exec A ping -c1 -W1 10.2.0.1 >/dev/null || true
    if ip netns exec A ping -c1 -W1 10.2.0.50 >/dev/null; then echo "A reached C" >&2; exit 1; fi
}

# The by-hand job in a namespace of its own, as `cnm test` runs a script in one.
if [ "${1:-}" = by-hand ]; then
    mkdir -p /run/netns
    mount -t tmpfs tmpfs /run/netns
    ip link set lo up
    echo 1 > /proc/sys/net/ipv4/ip_forward
    by_hand
    exit
fi

by_hand_isolated() {
    unshare --net --mount --propagation private "$0" by-hand
}

cnm_test() {
    "$CNM" test "$ROOT/scripts/seed.cnm" >/dev/null
}

declare -A times
for run in $(seq 1 "$RUNS"); do
    for tool in cnm_test by_hand_isolated; do
        s=$(now); $tool; e=$(now)
        times[$tool]="${times[$tool]:-} $(ms "$s" "$e")"
    done
done
cnm=$(echo "${times[cnm_test]}" | median)
hand=$(echo "${times[by_hand_isolated]}" | median)
printf '%-40s %10s\n' "cnm test scripts/seed.cnm (median, ms)" "$cnm"
printf '%-40s %10s\n' "ip -batch + nft + ping by hand (ms)" "$hand"
printf '%-40s %10s\n' "ratio cnm / by hand" "$(awk -v a="$cnm" -v b="$hand" 'BEGIN { printf "%.3f", a / b }')"
