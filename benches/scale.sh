#!/usr/bin/env bash
# How cnm's apply and destroy grow with the number of sandboxes, against the tools a user
# would pick instead, doing the same job in the same run on the same machine.
#
#   benches/scale.sh [ "100 500 1000" ] [ RUNS ] [ "ip-batch cni netavark" ]
#   benches/scale.sh -h                                  (the manual: what each figure is)
#
# The job, for every tool: one bridge network 10.88.0.0/16 and N sandboxes, each a named
# network namespace with lo up, one veth on the bridge, an address and a default route;
# then tear it all down. cnm applies a generated script (`network bench subnet
# 10.88.0.0/16`, then `for i in 1..N { sandbox s$i mode none; connect s$i to bench }`) and
# runs `cnm destroy`. The peers, ported from the shared peer scripts (peer-ip-batch.sh,
# peer-cni.sh, peer-netavark.sh): `ip -batch` (one root batch file, one small batch per
# sandbox, one teardown batch); the CNI bridge plugin with host-local IPAM (ipMasq off)
# plus the loopback plugin for lo, per sandbox, as container runtimes call them; and
# netavark, per sandbox, as podman calls it (the caller picks the address).
#
# What the tools do beyond that job. cnm: records each transaction in its state
# directory (state.json and journal.jsonl, synced to disk); writes one hosts file per
# sandbox into the etc dir, listing every sandbox of the network (N files of N+3 lines);
# keeps its nftables table (inet cnm: a few set elements per network); sets ip_forward
# and the bridge's route_localnet. netavark: sets ip_forward and adds iptables rules (it
# runs iptables tens of times per sandbox). ip -batch and CNI: nothing more.
#
# Paths as users have them: namespaces on tmpfs (/run/netns); cnm's state and etc
# directories on a disk (a fresh directory under target/, never tmpfs; the etc directory
# made by cnm's first apply, as /etc/netns is where nothing has made it). cnm runs in two
# variants: "fresh" (an empty state directory for every run) and "history" (a state
# directory that has been through ten apply/destroy cycles of the same script first).
# Every command's stdout and stderr go to a pipe, as in CI, and the whole command is
# timed. Destroy is timed until the kernel has removed every veth and namespace
# ("settled"; cnm waits for that itself, ip -batch and the others do not).
#
# Runs inside a throwaway user + network + mount namespace with tmpfs on /run and
# /var/lib: the host's network, /etc/netns and /var/lib are untouched. CNM=path/to/cnm
# picks the binary (default: a release build of this tree). Needs iproute2; the peers
# that are not installed are skipped (apt-get install -y containernetworking-plugins
# netavark). A default run takes about eight minutes on two cores, after the build.
set -euo pipefail

usage() {
    cat <<'EOF'
NAME
    benches/scale.sh - cnm's apply and destroy at 100 to 1000 sandboxes, against
    ip -batch, the CNI bridge plugin and netavark

SYNOPSIS
    benches/scale.sh [-h] [NS [RUNS [PEERS]]]

DESCRIPTION
    For each N in NS, every tool makes one bridge network 10.88.0.0/16 and N sandboxes
    (a named network namespace with lo up, one veth on the bridge, an address and a
    default route), then tears it all down. cnm applies a generated script and runs
    `cnm destroy`, with an empty state directory ("cnm fresh") and with one that has
    been through ten apply/destroy cycles of the same script ("cnm history"). The runs
    of the tools are interleaved. Everything happens in a throwaway user, network and
    mount namespace; cnm's state and etc directories are on a disk, under target/
    (the etc directory made by cnm's first apply, as /etc/netns is on a host where
    nothing has made it).

    It prints, per N and tool, the medians of apply and of destroy until the kernel
    has removed every veth and namespace, apply per sandbox, and the ratios cnm / peer
    (below 1: cnm is faster). Then, for cnm: the peak memory of an apply at the largest
    N; a no-op re-apply of the same script there; a failed apply at ROLLBACK_N (a
    hand-made interface takes the name of the last veth the plan creates), timed to
    its exit 1 after rolling back, with the rollback's own time as cnm reports it,
    then checked to have left the kernel, the etc directory and the state as they
    were; `cnm plan` of PLAN_N sandboxes on 10 networks with no state (the front end
    alone; after one run not counted), its output read through a pipe by `tail`, whose
    last line is checked; and how apply per sandbox grows from the smallest N to the
    largest (1.00: linearly).

    Progress goes to standard error. The table also goes to RESULTS/scale-STAMP.txt and
    every single run's figure to RESULTS/scale-STAMP.tsv (columns: n, tool, what, run,
    value, unit).

ARGUMENTS
    NS      The sandbox counts, as one word list (default "100 500 1000"; 1 to 60000).
    RUNS    Runs per N and tool; medians are reported, the lower middle one for an even
            count (default 5).
    PEERS   The peers to run, among ip-batch, cni and netavark (default all three; ""
            runs cnm alone). A peer that is not installed is reported and skipped.

ENVIRONMENT
    CNM         The cnm binary (default: `cargo build --release` of this tree, then its
                target/release/cnm, or CARGO_TARGET_DIR's).
    PEER_NS     The N at which cni and netavark run, those in NS (default "500": they
                take 10 to 20 s a run there).
    PEER_RUNS   Their runs per N, RUNS at most (default 3).
    ROLLBACK_N  The sandboxes of the failing apply (default 500; "" skips it).
    PLAN_N      The sandboxes of the front-end plan, a multiple of 10 (default 10000;
                "" skips it).
    BENCH_DIR   Where cnm's state and etc directories are made, on a disk, not tmpfs
                (default: target/ of this tree).
    RESULTS     Where the table and the raw figures are kept (default:
                target/scale-bench-results of this tree).

EXIT STATUS
    0 measured; 1 a command failed or a check did not hold (the message names the
    command and shows its output); 2 a usage error.

EXAMPLES
    benches/scale.sh                       the default run (about eight minutes)
    benches/scale.sh 100 1 ip-batch        a quick look: N=100, one run, cnm and ip -batch
    PEER_NS="100 500" benches/scale.sh     the slow peers at 100 as well
    CNM=target/debug/cnm benches/scale.sh "10 20" 3 ""    cnm alone, another binary
EOF
}

die() { echo "scale.sh: $*" >&2; exit 1; }
bad_usage() { echo "scale.sh: $*" >&2; echo "usage: benches/scale.sh [-h] [NS [RUNS [PEERS]]]  (-h for more)" >&2; exit 2; }

case ${1:-} in -h | --help) usage; exit 0 ;; -*) bad_usage "unknown option $1" ;; esac
[ $# -le 3 ] || bad_usage "too many arguments"
NS=${1:-100 500 1000}
RUNS=${2:-5}
PEERS=${3-ip-batch cni netavark}
PEER_NS=${PEER_NS-500}
PEER_RUNS=${PEER_RUNS:-3}
ROLLBACK_N=${ROLLBACK_N-500}
PLAN_N=${PLAN_N-10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$ROOT/target}
RESULTS=${RESULTS:-$ROOT/target/scale-bench-results}

count() { [[ $1 =~ ^[1-9][0-9]*$ ]] && [ "$1" -le "${2:-60000}" ]; }
for n in $NS $PEER_NS $ROLLBACK_N; do count "$n" || bad_usage "not a sandbox count (1 to 60000): $n"; done
[ -n "${NS// /}" ] || bad_usage "NS is empty"
count "$RUNS" 1000 || bad_usage "RUNS is not a count: $RUNS"
count "$PEER_RUNS" 1000 || bad_usage "PEER_RUNS is not a count: $PEER_RUNS"
[ -z "$PLAN_N" ] || { count "$PLAN_N" 600000 && [ $((PLAN_N % 10)) = 0 ]; } ||
    bad_usage "PLAN_N is not a multiple of 10: $PLAN_N"
for p in $PEERS; do
    case $p in ip-batch | cni | netavark) ;; *) bad_usage "unknown peer $p (ip-batch, cni, netavark)" ;; esac
done
for d in "$BENCH_DIR" "$RESULTS"; do
    case $(realpath -m "$d")/ in /run/* | /var/lib/*) bad_usage "$d is hidden by the benchmark's own tmpfs" ;; esac
done

if [ "${CNM_SCALE_INSIDE:-}" != 1 ]; then
    if [ -z "${CNM:-}" ]; then
        echo "scale.sh: building cnm (cargo build --release)..." >&2
        cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
        CNM=${CARGO_TARGET_DIR:-$ROOT/target}/release/cnm
    fi
    [ -x "$CNM" ] || die "CNM=$CNM is not an executable"
    CNM=$(realpath "$CNM")
    CNM_SCALE_HOST_NETNS=$(readlink /proc/self/ns/net)
    export CNM CNM_SCALE_HOST_NETNS CNM_SCALE_INSIDE=1
    mkdir -p "$BENCH_DIR" "$RESULTS"
    # shellcheck disable=SC2016 # expanded by that sh
    exec unshare --user --map-root-user --net --mount --propagation private \
        sh -c 'mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib && exec bash "$0" "$@"' \
        "$0" "$@"
fi

# --- Inside the throwaway namespaces from here on. -------------------------------------
[ "$(readlink /proc/self/ns/net)" != "$CNM_SCALE_HOST_NETNS" ] || die "refusing: still in the host's network namespace"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ip link set lo up
W=/run/cnm-scale                     # generated scripts and outputs (tmpfs)
mkdir -p "$W" /run/netns /run/cni /run/netavark /run/containers
D=$(mktemp -d "$BENCH_DIR/scale-bench.XXXXXX")
trap 'rm -rf "$D"' EXIT
trap 'exit 130' INT TERM
FS=$(stat -f -c %T "$D")
case $FS in tmpfs | ramfs) die "$D is on $FS: set BENCH_DIR to a directory on a disk" ;; esac
export CNM_NETNS_DIR=/run/netns CNM_ETC_DIR=$D/etc
# Made by cnm on its first apply, as /etc/netns is on a host where nothing has made it.
ETC=$D/etc
STAMP=$(date +%Y%m%d-%H%M%S)
RAW=$RESULTS/scale-$STAMP.tsv
TABLE=$RESULTS/scale-$STAMP.txt
printf 'n\ttool\twhat\trun\tvalue\tunit\n' > "$RAW"
OUT=$W/out
SUBNET=10.88.0.0/16 GW=10.88.0.1 BR=cnm0
TOOLS="cnm-fresh cnm-history"
declare -A NOTE=()                   # why a peer is missing

CNI_DIR=""
for d in /usr/lib/cni /opt/cni/bin; do
    [ -x "$d/bridge" ] && [ -x "$d/host-local" ] && [ -x "$d/loopback" ] && { CNI_DIR=$d; break; }
done
NV=$(command -v netavark || true)
for f in /usr/lib/podman/netavark /usr/libexec/podman/netavark; do [ -n "$NV" ] || [ ! -x "$f" ] || NV=$f; done
MISSING="not installed (apt-get install -y containernetworking-plugins netavark)"
for p in $PEERS; do
    case $p in
        cni) [ -n "$CNI_DIR" ] || NOTE[cni]="$MISSING: no bridge, host-local, loopback in /usr/lib/cni or /opt/cni/bin" ;;
        netavark) if [ -z "$NV" ] || ! command -v iptables > /dev/null; then NOTE[netavark]="$MISSING: no netavark, or no iptables"; fi ;;
    esac
    [ -n "${NOTE[$p]:-}" ] || TOOLS="$TOOLS $p"
done

# runs_at TOOL N: how many runs TOOL gets at N (0: none).
runs_at() {
    case $1 in
        cni | netavark) if [[ " $PEER_NS " == *" $2 "* ]]; then echo $((PEER_RUNS < RUNS ? PEER_RUNS : RUNS)); else echo 0; fi ;;
        *) echo "$RUNS" ;;
    esac
}

# run STATUS WHAT COMMAND...: runs COMMAND with its stdout and stderr into a pipe; any
# other exit status than STATUS is an error that shows the command and its output.
run() {
    local want=$1 what=$2 rc=0
    shift 2
    "$@" 2>&1 | cat > "$OUT" || rc=$?
    [ "$rc" = "$want" ] && return 0
    {
        echo "scale.sh: $what: \`$*\` exited with status $rc (expected $want); its output ends:"
        tail -n 30 "$OUT" | sed 's/^/    /'
    } >&2
    exit 1
}

shopt -s nullglob
netns() { local f=(/run/netns/*); echo "${#f[@]}"; }   # how many named namespaces
# Wait until no veth and no namespace file is left (two minutes at most).
settle() {
    local deadline=$((EPOCHSECONDS + 120))
    while [ -n "$(ip -o link show type veth | head -1)" ] || [ "$(netns)" != 0 ]; do
        [ "$EPOCHSECONDS" -lt "$deadline" ] || die "the kernel still holds veths or namespaces after 120 s: $(ip -o link show type veth | wc -l) veths, $(netns) namespaces"
        sleep 0.002
    done
}

now() { T=${EPOCHREALTIME/[.,]/}; }   # microseconds, in T, no fork
# record N TOOL WHAT RUN MICROSECONDS: one figure, in milliseconds, into the raw file.
record() { printf '%s\t%s\t%s\t%s\t%d.%03d\tms\n' "$1" "$2" "$3" "$4" $(($5 / 1000)) $(($5 % 1000)) >> "$RAW"; }
# med N TOOL WHAT: the median of the recorded figures ("" if none).
med() {
    awk -F'\t' -v n="$1" -v t="$2" -v w="$3" '$1 == n && $2 == t && $3 == w { print $5 }' "$RAW" |
        sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
ratio() { if [ -n "$1" ] && [ -n "$2" ]; then calc %.2f "$1 / $2"; else echo -; fi; }
ip_of() { local i=$(($1 + 1)); IP=10.88.$((i / 256)).$((i % 256)); }

# gen N: the job's scripts for every tool that runs at N, under $W/N.
gen() {
    local n=$1 d=$W/$1 i
    mkdir -p "$d"
    # shellcheck disable=SC2016 # $i is cnm's loop variable
    printf 'network bench subnet %s\nfor i in 1..%d {\n    sandbox s$i mode none\n    connect s$i to bench\n}\n' \
        "$SUBNET" "$n" > "$d/cnm.cnm"
    if [ "$(runs_at ip-batch "$n")" != 0 ] && [[ " $TOOLS " == *" ip-batch "* ]]; then
        {
            printf 'link add %s type bridge\naddr add %s/16 dev %s\nlink set %s up\n' "$BR" "$GW" "$BR" "$BR"
            for ((i = 1; i <= n; i++)); do echo "netns add s$i"; done
            for ((i = 1; i <= n; i++)); do
                printf 'link add vh%d type veth peer name eth0 netns s%d\nlink set vh%d master %s up\n' "$i" "$i" "$i" "$BR"
            done
        } > "$d/root.batch"
        {
            echo "ip -batch $d/root.batch"
            for ((i = 1; i <= n; i++)); do
                ip_of "$i"
                printf 'link set lo up\naddr add %s/16 dev eth0\nlink set eth0 up\nroute add default via %s\n' \
                    "$IP" "$GW" > "$d/s$i.batch"
                echo "ip -n s$i -batch $d/s$i.batch"
            done
        } > "$d/ip-batch.up"
        { for ((i = 1; i <= n; i++)); do echo "netns del s$i"; done; echo "link del $BR"; } > "$d/down.batch"
        echo "ip -force -batch $d/down.batch" > "$d/ip-batch.down"
    fi
    if [ "$(runs_at cni "$n")" != 0 ] && [[ " $TOOLS " == *" cni "* ]]; then
        printf '{"cniVersion":"1.0.0","name":"cnm","type":"bridge","bridge":"%s","isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","ranges":[[{"subnet":"%s","gateway":"%s"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":"/run/cni/networks"}}\n' \
            "$BR" "$SUBNET" "$GW" > "$W/cni.conf"
        echo '{"cniVersion":"1.0.0","name":"lo","type":"loopback"}' > "$W/cni-lo.conf"
        local cni="CNI_PATH=$CNI_DIR"
        {
            for ((i = 1; i <= n; i++)); do
                echo "ip netns add s$i"
                echo "CNI_COMMAND=ADD CNI_CONTAINERID=s$i CNI_NETNS=/run/netns/s$i CNI_IFNAME=lo $cni $CNI_DIR/loopback < $W/cni-lo.conf > /dev/null"
                echo "CNI_COMMAND=ADD CNI_CONTAINERID=s$i CNI_NETNS=/run/netns/s$i CNI_IFNAME=eth0 $cni $CNI_DIR/bridge < $W/cni.conf > /dev/null"
            done
        } > "$d/cni.up"
        {
            for ((i = 1; i <= n; i++)); do
                echo "CNI_COMMAND=DEL CNI_CONTAINERID=s$i CNI_NETNS=/run/netns/s$i CNI_IFNAME=eth0 $cni $CNI_DIR/bridge < $W/cni.conf"
                echo "ip netns del s$i"
            done
            echo "ip link del $BR"
        } > "$d/cni.down"
    fi
    if [ "$(runs_at netavark "$n")" != 0 ] && [[ " $TOOLS " == *" netavark "* ]]; then
        {
            for ((i = 1; i <= n; i++)); do
                ip_of "$i"
                printf '{"container_id":"s%d","container_name":"s%d","networks":{"cnm":{"interface_name":"eth0","static_ips":["%s"]}},"network_info":{"cnm":{"dns_enabled":false,"driver":"bridge","id":"53ce4390f2adb1681eb1a90ec8b48c49c015e0a8d336c197637e7f65e365fa9e","internal":false,"ipv6_enabled":false,"name":"cnm","network_interface":"%s","subnets":[{"gateway":"%s","subnet":"%s"}]}}}\n' \
                    "$i" "$i" "$IP" "$BR" "$GW" "$SUBNET" > "$d/nv$i.json"
                echo "ip netns add s$i"
                echo "$NV --config /run/netavark setup /run/netns/s$i < $d/nv$i.json > /dev/null"
            done
        } > "$d/netavark.up"
        {
            for ((i = 1; i <= n; i++)); do
                echo "$NV --config /run/netavark teardown /run/netns/s$i < $d/nv$i.json"
                echo "ip netns del s$i"
            done
        } > "$d/netavark.down"
    fi
}

# up TOOL N / down TOOL N: the job and its teardown, as the user types them.
up() {
    case $1 in
        cnm-fresh) rm -rf "$D/fresh"; run 0 "cnm apply, N=$2, fresh" "$CNM" --state-dir "$D/fresh" apply "$W/$2/cnm.cnm" ;;
        cnm-history) run 0 "cnm apply, N=$2, history" "$CNM" --state-dir "$D/history-$2" apply "$W/$2/cnm.cnm" ;;
        *) run 0 "$1 setup, N=$2" sh -e "$W/$2/$1.up" ;;
    esac
}
down() {
    case $1 in
        cnm-fresh) run 0 "cnm destroy, N=$2, fresh" "$CNM" --state-dir "$D/fresh" destroy ;;
        cnm-history) run 0 "cnm destroy, N=$2, history" "$CNM" --state-dir "$D/history-$2" destroy ;;
        *) run 0 "$1 teardown, N=$2" sh -e "$W/$2/$1.down" ;;
    esac
}
# The job is done: N namespaces, N veths, and the last sandbox has lo up, its address
# and its default route. Torn down: nothing left (no bridge, no cnm files either).
check_up() {
    local n=$2 what="$1 at N=$2"
    [ "$(netns)" = "$n" ] || die "$what: $(netns) namespaces, not $n"
    [ "$(ip -o link show type veth | wc -l)" = "$n" ] || die "$what: $(ip -o link show type veth | wc -l) veths, not $n"
    ip -n "s$n" -o link show lo | grep -q '[<,]UP[,>]' || die "$what: lo is down in s$n"
    ip -n "s$n" -4 -o addr show dev eth0 | grep -q ' inet 10\.88\.' || die "$what: s$n has no address in $SUBNET"
    ip -n "s$n" route show default | grep -q "via $GW" || die "$what: s$n has no default route"
}
check_down() {
    [ -z "$(ip -o link show type bridge)" ] || die "$1 at N=$2 left a bridge: $(ip -o link show type bridge)"
    [ ! -d "$ETC" ] || [ -z "$(find "$ETC" -mindepth 1 | head -1)" ] || die "$1 at N=$2 left files in the etc dir: $(find "$ETC" -mindepth 1 | head -3)"
}

# cycle TOOL N RUN: one timed apply, one timed destroy until settled.
cycle() {
    local tool=$1 n=$2 r=$3 t0 t1
    [ "$tool" != cni ] || rm -rf /run/cni/networks
    now; t0=$T; up "$tool" "$n"; now; t1=$T
    record "$n" "$tool" apply "$r" $((t1 - t0))
    check_up "$tool" "$n"
    now; t0=$T; down "$tool" "$n"; settle; now; t1=$T
    record "$n" "$tool" destroy "$r" $((t1 - t0))
    check_down "$tool" "$n"
    printf 'scale.sh: N=%s run %s: %-12s apply %8s ms, destroy+settle %8s ms\n' "$n" "$r" "$tool" \
        "$(tail -n 2 "$RAW" | head -1 | cut -f5)" "$(tail -n 1 "$RAW" | cut -f5)" >&2
}

NMIN=$(tr ' ' '\n' <<< "$NS" | grep . | sort -n | head -1)
NMAX=$(tr ' ' '\n' <<< "$NS" | grep . | sort -n | tail -1)
echo "scale.sh: cnm $CNM ($("$CNM" --version)); state and etc dirs on $FS ($D); N = $NS; tools: $TOOLS" >&2

for n in $NS; do
    gen "$n"
    for c in 1 2 3 4 5 6 7 8 9 10; do
        echo "scale.sh: N=$n: giving cnm a history: apply/destroy cycle $c of 10" >&2
        up cnm-history "$n"; down cnm-history "$n"; settle
    done
    for ((r = 1; r <= RUNS; r++)); do
        for tool in $TOOLS; do
            if [ "$r" -le "$(runs_at "$tool" "$n")" ]; then cycle "$tool" "$n" "$r"; fi
        done
    done
done

# At the largest N: peak memory of an apply, then no-op re-applies, for both variants.
TIME=$(command -v /usr/bin/time || true)
for v in fresh history; do
    dir=$D/$v; [ $v = fresh ] || dir=$D/history-$NMAX
    rm -rf "$D/fresh"
    echo "scale.sh: N=$NMAX: cnm $v: peak memory of apply, $RUNS no-op re-applies..." >&2
    if [ -n "$TIME" ]; then
        run 0 "cnm apply under /usr/bin/time, N=$NMAX, $v" "$TIME" -f %M -o "$W/rss" "$CNM" --state-dir "$dir" apply "$W/$NMAX/cnm.cnm"
        printf '%s\tcnm-%s\tmax_rss\t1\t%s\tKiB\n' "$NMAX" "$v" "$(tail -n 1 "$W/rss")" >> "$RAW"
    else
        run 0 "cnm apply, N=$NMAX, $v" "$CNM" --state-dir "$dir" apply "$W/$NMAX/cnm.cnm"
    fi
    for ((r = 1; r <= RUNS; r++)); do
        now; t0=$T; run 0 "cnm no-op re-apply, N=$NMAX, $v" "$CNM" --state-dir "$dir" apply "$W/$NMAX/cnm.cnm"; now
        record "$NMAX" "cnm-$v" noop_apply "$r" $((T - t0))
    done
    check_up "cnm-$v no-op re-apply" "$NMAX"
    run 0 "cnm destroy, N=$NMAX, $v" "$CNM" --state-dir "$dir" destroy
    settle
done

# A failed apply at ROLLBACK_N: a hand-made interface holds the name of the plan's last
# veth, so the kernel refuses that step; the whole command is timed to its exit 1, and
# the rollback itself as cnm reports it ("N steps undone in S s", the kernel's removal
# of the veths included).
ROLLBACK=""
if [ -n "$ROLLBACK_N" ] && ! command -v jq > /dev/null; then
    ROLLBACK="skipped: needs jq to read the plan (apt-get install -y jq)"
elif [ -n "$ROLLBACK_N" ]; then
    n=$ROLLBACK_N S=$W/$n/cnm.cnm
    [ -f "$S" ] || TOOLS="" gen "$n"
    for ((r = 1; r <= RUNS; r++)); do
        rm -rf "$D/rollback"
        "$CNM" --state-dir "$D/rollback" plan --json "$S" > "$W/plan.json" 2> "$OUT" ||
            die "cnm plan --json $S failed: $(tail -n 5 "$OUT")"
        link=$(jq -r '[.steps[] | select(.op == "add_veth")] | last | .link' "$W/plan.json")
        at=$(jq -r '[.steps[] | select(.op == "add_veth")] | last | .index' "$W/plan.json")
        steps=$(jq '.steps | length' "$W/plan.json")
        kind=dummy
        ip link add "$link" type dummy 2> /dev/null || { kind=bridge; ip link add "$link" type bridge; }
        before="$(ip -o link show | cut -d' ' -f2-3) $(ls -A /run/netns "$ETC") $("$CNM" --state-dir "$D/rollback" show 2>&1)"
        now; t0=$T; run 1 "failing cnm apply, N=$n" "$CNM" --state-dir "$D/rollback" apply "$S"; now
        record "$n" cnm-fresh rollback "$r" $((T - t0))
        grep -q "$link" "$OUT" || die "the failing apply at N=$n did not fail on $link; its output ends: $(tail -n 5 "$OUT")"
        undo=$(tr -s ' \n│' ' ' < "$OUT" | grep -o 'undone in [0-9.]* s' | cut -d' ' -f3) ||
            die "the failing apply at N=$n did not say how long its rollback took: $(tail -n 5 "$OUT")"
        record "$n" cnm-fresh undo "$r" "$(calc %d "$undo * 1000000")"
        settle
        after="$(ip -o link show | cut -d' ' -f2-3) $(ls -A /run/netns "$ETC") $("$CNM" --state-dir "$D/rollback" show 2>&1)"
        [ "$before" = "$after" ] || die "the failed apply at N=$n did not leave things as they were: $(diff <(echo "$before") <(echo "$after") | head -5)"
        ip link del "$link"
        echo "scale.sh: N=$n run $r: failing apply (step $at of $steps refused) $(tail -n 2 "$RAW" | head -n 1 | cut -f5) ms, its rollback $(tail -n 1 "$RAW" | cut -f5) ms" >&2
    done
    ROLLBACK="step $at of $steps refused (a $kind took $link), exit 1, kernel, etc dir and state as before"
fi

# The front end: plan PLAN_N sandboxes on 10 networks, nothing applied.
if [ -n "$PLAN_N" ]; then
    {
        for k in 1 2 3 4 5 6 7 8 9 10; do echo "network net$k subnet 10.$((100 + k)).0.0/16"; done
        # shellcheck disable=SC2016 # $i is cnm's loop variable
        for k in 1 2 3 4 5 6 7 8 9 10; do
            printf 'for i in 1..%d {\n    sandbox n%ds$i mode none\n    connect n%ds$i to net%d\n}\n' $((PLAN_N / 10)) "$k" "$k" "$k"
        done
    } > "$W/plan.cnm"
    want="Plan: $((2 * PLAN_N + 10)) to add, 0 to change, 0 to remove."
    # One run first, not counted, as hyperfine's warm-up: the first took up to twice as long.
    "$CNM" --state-dir "$D/no-state" plan "$W/plan.cnm" > /dev/null 2> "$OUT" ||
        die "cnm plan of $PLAN_N sandboxes failed: $(tail -n 5 "$OUT")"
    for ((r = 1; r <= RUNS; r++)); do
        # To a pipe, whose reader keeps the last line: the plan is read whole, not stored.
        now; t0=$T
        "$CNM" --state-dir "$D/no-state" plan "$W/plan.cnm" 2> "$OUT" | tail -n 1 > "$W/plan-end" ||
            die "cnm plan of $PLAN_N sandboxes failed: $(tail -n 5 "$OUT")"
        now
        [ "$(cat "$W/plan-end")" = "$want" ] ||
            die "cnm plan of $PLAN_N sandboxes ended with \"$(cat "$W/plan-end")\", not \"$want\""
        record "$PLAN_N" cnm plan "$r" $((T - t0))
        echo "scale.sh: plan of $PLAN_N sandboxes, run $r: $(tail -n 1 "$RAW" | cut -f5) ms" >&2
    done
fi

# --- The table. -------------------------------------------------------------------------
label() { case $1 in cnm-fresh) echo "cnm fresh" ;; cnm-history) echo "cnm history" ;; ip-batch) echo "ip -batch" ;; *) echo "$1" ;; esac; }
{
    echo "cnm $("$CNM" --version | awk '{ print $NF }') against ip -batch, CNI and netavark: bridge 10.88.0.0/16, N sandboxes"
    echo "$(nproc) cores, Linux $(uname -r); namespaces on tmpfs, cnm's state and etc dirs on $FS; $(date '+%F %R')"
    echo "medians of the runs; ratios are cnm / peer: below 1, cnm is faster"
    echo
    printf '%6s  %-12s %4s %10s %9s %10s   %-15s %-15s\n' "" "" "" "apply" "apply per" "destroy +" \
        "cnm fresh/peer" "cnm history/peer"
    printf '%6s  %-12s %4s %10s %9s %10s   %7s %7s %7s %7s\n' N tool runs ms "sandbox" "settle ms" \
        apply destroy apply destroy
    for n in $NS; do
        fa=$(med "$n" cnm-fresh apply); fd=$(med "$n" cnm-fresh destroy)
        ha=$(med "$n" cnm-history apply); hd=$(med "$n" cnm-history destroy)
        for tool in $TOOLS; do
            runs=$(runs_at "$tool" "$n"); [ "$runs" != 0 ] || continue
            a=$(med "$n" "$tool" apply); d=$(med "$n" "$tool" destroy)
            printf '%6s  %-12s %4s %10.1f %9.2f %10.1f' "$n" "$(label "$tool")" "$runs" "$a" "$(calc %.4f "$a / $n")" "$d"
            case $tool in
                cnm-*) echo ;;
                *) printf '   %7s %7s %7s %7s\n' "$(ratio "$fa" "$a")" "$(ratio "$fd" "$d")" "$(ratio "$ha" "$a")" "$(ratio "$hd" "$d")" ;;
            esac
        done
    done
    for p in $PEERS; do
        [ -z "${NOTE[$p]:-}" ] || { printf '%-10s %s\n' "$p:" "${NOTE[$p]}"; continue; }
        case $p in cni | netavark) printf '%-10s run only at the N of PEER_NS="%s" that are in NS, %s runs each\n' \
            "$p:" "$PEER_NS" $((PEER_RUNS < RUNS ? PEER_RUNS : RUNS)) ;; esac
    done
    echo
    rf=$(awk -F'\t' -v n="$NMAX" '$1 == n && $2 == "cnm-fresh" && $3 == "max_rss" { print $5 }' "$RAW")
    rh=$(awk -F'\t' -v n="$NMAX" '$1 == n && $2 == "cnm-history" && $3 == "max_rss" { print $5 }' "$RAW")
    if [ -n "$rf" ]; then
        printf '%-42s fresh %7.1f MiB   history %7.1f MiB\n' "peak memory (max RSS) of apply, N=$NMAX" \
            "$(calc %.1f "$rf / 1024")" "$(calc %.1f "$rh / 1024")"
    else
        printf '%-42s %s\n' "peak memory (max RSS) of apply, N=$NMAX" "not measured: no /usr/bin/time (apt-get install -y time)"
    fi
    printf '%-42s fresh %7.1f ms    history %7.1f ms\n' "no-op re-apply, N=$NMAX" \
        "$(med "$NMAX" cnm-fresh noop_apply)" "$(med "$NMAX" cnm-history noop_apply)"
    [ -z "$ROLLBACK_N" ] || if [ -n "$(med "$ROLLBACK_N" cnm-fresh rollback)" ]; then
        printf '%-42s %8.1f ms, of which the rollback %.1f ms: %s\n' "failed apply rolled back, N=$ROLLBACK_N" \
            "$(med "$ROLLBACK_N" cnm-fresh rollback)" "$(med "$ROLLBACK_N" cnm-fresh undo)" "$ROLLBACK"
    else
        printf '%-42s %s\n' "failed apply rolled back, N=$ROLLBACK_N" "$ROLLBACK"
    fi
    [ -z "$PLAN_N" ] || printf '%-42s %8.1f ms (whole process, output to a pipe)\n' \
        "cnm plan, $PLAN_N sandboxes on 10 networks" "$(med "$PLAN_N" cnm plan)"
    if [ "$NMIN" != "$NMAX" ]; then
        sf=$(calc %.2f "($(med "$NMAX" cnm-fresh apply) / $NMAX) / ($(med "$NMIN" cnm-fresh apply) / $NMIN)")
        sh=$(calc %.2f "($(med "$NMAX" cnm-history apply) / $NMAX) / ($(med "$NMIN" cnm-history apply) / $NMIN)")
        printf '%-42s fresh %7s       history %7s      (1.00: linear)\n' "apply per sandbox, N=$NMAX / N=$NMIN" "$sf" "$sh"
    fi
    echo
    echo "raw figures: $RAW"
} | tee "$TABLE"
echo "table: $TABLE" >&2
