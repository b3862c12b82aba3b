#!/usr/bin/env bash
# Start and stop a real Ceph RADOS Gateway (S3 server) for integration tests.
#
#   scripts/ceph-rgw.sh install      install radosgw, ceph-mon, ceph-osd (Debian) if missing
#   scripts/ceph-rgw.sh start DIR    create a scratch cluster in DIR and start it;
#                                    writes DIR/env (S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY)
#   scripts/ceph-rgw.sh stop DIR     stop the daemons started in DIR and remove DIR
#
# The cluster is one monitor, one OSD (memstore: data in RAM, capped at 1 GiB, or at
# CEPH_RGW_MEMSTORE_BYTES; the benchmarks need more) and radosgw
# (beast frontend), all bound to 127.0.0.1 on free ports, cephx with one local keyring.
# Everything the daemons write (data, logs, sockets, pid files, crash dumps) stays in DIR.
# Ceph 16 "Pacific" (Debian 12) has no cluster-less backend, hence the monitor and OSD.
set -euo pipefail

ACCESS_KEY=PUBLISHERTESTACCESSKEY
SECRET_KEY=publisher-test-secret-key-0123456789abcdef
RGW_NAME=client.rgw.test
# The one key of the "testing" KMS backend (SSE-KMS tests; 32 bytes, base64, not secret).
CEPH_TEST_KMS_KEY_ID=testkey-1
CEPH_TEST_KMS_KEY=cHVibGlzaGVyLXRlc3Qta21zLWtleS0wMTIzNDU2Nzg=
START_TIMEOUT=${CEPH_RGW_START_TIMEOUT:-90}
# Pools radosgw would otherwise create on the first bucket write, making it slow.
DATA_POOLS="default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec"

usage() {
    echo "usage: $0 install | start DIR | stop DIR" >&2
    exit 2
}

log() { echo "ceph-rgw: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root (or sudo) to run: $*"
        exit 1
    fi
}

cmd_install() {
    if command -v radosgw >/dev/null 2>&1; then
        log "radosgw already installed: $(command -v radosgw)"
        return 0
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd
}

# Print "BASE" such that BASE .. BASE+COUNT-1 are all free TCP ports on 127.0.0.1.
pick_ports() {
    python3 - "$1" <<'EOF'
import random, socket, sys
count = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 60000 - count)
    socks = []
    try:
        for port in range(base, base + count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    sys.exit(0)
sys.exit("no free port range found")
EOF
}

# Succeeds once radosgw answers HTTP with an S3 XML document (anonymous ListBuckets).
http_ready() {
    python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    body = urllib.request.urlopen(sys.argv[1], timeout=3).read()
except urllib.error.HTTPError as e:
    body = e.read()
except Exception:
    sys.exit(1)
sys.exit(0 if b"<?xml" in body or b"ListAllMyBucketsResult" in body else 1)
EOF
}

# Run a ceph CLI tool against the scratch cluster with a bounded wait.
c() { timeout 60 "$@" -c "$DIR/ceph.conf"; }

show_logs() {
    local f
    for f in "$DIR"/log/*.log "$DIR"/log/*.out; do
        [ -s "$f" ] || continue
        echo "----- tail of $f -----" >&2
        tail -n 25 "$f" >&2 || true
    done
}

# True while process $1 exists and is not a zombie (an exited daemon whose new parent, the
# init process, has not reaped it yet still answers kill -0).
running() {
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# Stop the daemons whose pid files are in $DIR/pid, one after the other: radosgw, OSD, monitor
# (each takes ~0.2 s; stopped together, radosgw and the OSD can hang waiting for each other or
# for the monitor).
stop_daemons() {
    local name pidfile pid i
    for name in rgw osd mon; do
        pidfile="$DIR/pid/$name.pid"
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        # Only signal the process if it is still the daemon started for this DIR.
        if [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" |
            grep -qF -- "$DIR/ceph.conf"; then
            kill -TERM "$pid" 2>/dev/null || true
            for i in $(seq 1 50); do
                running "$pid" || break
                sleep 0.1
            done
            if running "$pid"; then
                log "$name ($pid) still running 5 s after TERM: KILL"
                kill -KILL "$pid" 2>/dev/null || true
                for i in $(seq 1 20); do
                    running "$pid" || break
                    sleep 0.1
                done
            fi
        fi
        rm -f "$pidfile"
    done
}

fail() {
    log "start failed: $*"
    show_logs
    stop_daemons
    log "daemons stopped; logs kept in $DIR (remove it with: $0 stop $DIR)"
    exit 1
}

# Start a daemon in the background; its output goes to DIR/log/NAME.out.
spawn() {
    local name=$1
    shift
    "$@" </dev/null >"$DIR/log/$name.out" 2>&1 &
    echo $! >"$DIR/pid/$name.pid"
}

# wait_for DAEMON DESCRIPTION COMMAND...: retry COMMAND until it succeeds, failing if DAEMON
# exits or the start-up deadline (START_TIMEOUT after 'start' began) passes.
wait_for() {
    local daemon=$1 what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        running "$(cat "$DIR/pid/$daemon.pid")" || fail "$daemon exited while waiting for $what"
        [ "$SECONDS" -lt "$DEADLINE" ] ||
            fail "timed out after $START_TIMEOUT s waiting for $what"
        sleep 0.5
    done
}

# Create one of radosgw's bucket pools and wait until it takes writes.
warm_pool() {
    c ceph osd pool create "$1" 8 8 &&
        c ceph osd pool application enable "$1" rgw &&
        c rados -n client.admin -p "$1" put warm-up "$DIR/ceph.conf" &&
        c rados -n client.admin -p "$1" rm warm-up
}

cmd_start() {
    [ $# -eq 1 ] || usage
    if [ -e "$1" ] && [ -n "$(ls -A "$1")" ]; then
        log "$1 exists and is not empty"
        exit 1
    fi
    mkdir -p "$1"
    DIR=$(cd "$1" && pwd)
    export CEPH_CONF="$DIR/ceph.conf"
    local started=$SECONDS
    DEADLINE=$((SECONDS + START_TIMEOUT))
    trap 'fail "interrupted"' INT TERM
    mkdir -p "$DIR"/{log,run,pid,crash,mon,osd,rgw}

    # Ports: mon v2, mon v1, rgw, then a small range for the OSD's messengers
    # (public, cluster, two heartbeat, each on msgr v2 and v1 = 8 ports).
    local base mon2 mon1 rgw_port
    base=$(pick_ports 16)
    mon2=$base
    mon1=$((base + 1))
    rgw_port=$((base + 2))
    local fsid osd_uuid
    fsid=$(cat /proc/sys/kernel/random/uuid)
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)

    cat >"$DIR/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon2,v1:127.0.0.1:$mon1]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
ms bind port min = $((base + 3))
ms bind port max = $((base + 15))
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
crash dir = $DIR/crash
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = true
mon cluster log file = $DIR/log/cluster.log
mon data = $DIR/mon/\$id
osd data = $DIR/osd/\$id
rgw data = $DIR/rgw/\$id
osd objectstore = memstore
memstore device bytes = ${CEPH_RGW_MEMSTORE_BYTES:-1073741824}
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
# The monitor batches map changes for up to 1 s each; radosgw creates its pools one by one.
paxos propose interval = 0.05

[client]
# ceph, rados, radosgw-admin: one shared log, one admin socket per process.
log file = $DIR/log/client.log
admin socket = $DIR/run/\$name.\$pid.asok

[$RGW_NAME]
log file = $DIR/log/rgw.log
admin socket = $DIR/run/\$name.asok
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw gc obj min wait = 30
rgw gc processor period = 30
# SSE-KMS for the encryption tests: the "testing" backend takes its keys from this very
# file (a fixed test key, no KMS server); plain HTTP on loopback may carry SSE requests.
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = $CEPH_TEST_KMS_KEY_ID=$CEPH_TEST_KMS_KEY
rgw crypt require ssl = false
EOF

    # One keyring for every entity; the monitor imports it all at mkfs.
    ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool "$DIR/keyring" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
    ceph-authtool "$DIR/keyring" --gen-key -n osd.0 \
        --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
    ceph-authtool "$DIR/keyring" --gen-key -n "$RGW_NAME" \
        --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null

    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon2,v1:127.0.0.1:$mon1]" \
        "$DIR/monmap" >/dev/null
    ceph-mon -c "$DIR/ceph.conf" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" \
        >"$DIR/log/mon-mkfs.out" 2>&1 || fail "ceph-mon --mkfs"
    spawn mon ceph-mon -c "$DIR/ceph.conf" -i a -f
    wait_for mon "the monitor" c ceph --connect-timeout 5 mon stat

    # OSD 0 (its cephx key is already known to the monitor).
    c ceph osd new "$osd_uuid" 0 >/dev/null || fail "ceph osd new"
    mkdir -p "$DIR/osd/0"
    ceph-osd -c "$DIR/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" \
        >"$DIR/log/osd-mkfs.out" 2>&1 || fail "ceph-osd --mkfs"
    spawn osd ceph-osd -c "$DIR/ceph.conf" -i 0 -f
    osd_up() { c ceph osd dump 2>/dev/null | grep -q '^osd\.0 up'; }
    wait_for osd "the OSD to come up" osd_up

    spawn rgw radosgw -c "$DIR/ceph.conf" -n "$RGW_NAME" -f
    local endpoint="http://127.0.0.1:$rgw_port"
    wait_for rgw "radosgw to answer HTTP on $endpoint" http_ready "$endpoint/"

    c radosgw-admin -n client.admin user create --uid=publisher-test \
        --display-name="publisher integration tests" \
        --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null ||
        fail "radosgw-admin user create"

    # Warm-up: radosgw creates its bucket pools on the first bucket write, which then takes
    # longer than any later write. Create those pools here (in parallel) and write/remove one
    # RADOS object in each, which blocks until its placement groups are active; the first S3
    # write is then as fast as the others.
    local pool pid pids=()
    for pool in $DATA_POOLS; do
        warm_pool "$pool" >"$DIR/log/warm-up-$pool.out" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || fail "warm-up (see $DIR/log/warm-up-*.out)"
    done
    http_ready "$endpoint/" || fail "radosgw stopped answering"

    cat >"$DIR/env" <<EOF
S3_ENDPOINT=$endpoint
S3_ACCESS_KEY=$ACCESS_KEY
S3_SECRET_KEY=$SECRET_KEY
EOF
    trap - INT TERM
    log "ready in $((SECONDS - started)) s; env in $DIR/env"
    echo "$endpoint"
}

cmd_stop() {
    [ $# -eq 1 ] || usage
    [ -d "$1" ] || { log "$1: no such directory"; return 0; }
    DIR=$(cd "$1" && pwd)
    if [ ! -f "$DIR/ceph.conf" ] && [ -n "$(ls -A "$DIR")" ]; then
        log "$DIR does not look like a cluster made by '$0 start': not removing it"
        exit 1
    fi
    stop_daemons
    rm -rf "$DIR"
}

[ $# -ge 1 ] || usage
action=$1
shift
case "$action" in
    install) [ $# -eq 0 ] || usage; cmd_install ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    *) usage ;;
esac
