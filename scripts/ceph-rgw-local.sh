#!/bin/bash
# A throwaway single-node Ceph cluster (1 mon, 1 bluestore OSD on a sparse file, RGW)
# on 127.0.0.1, no mgr, auth none: the S3 endpoint (with Object Lock) that the S3
# backend's tests and benchmarks run against. Adapted from shared/recipes/ceph-rgw-local.sh.
#
#   scripts/ceph-rgw-local.sh DIR [RGW_PORT] [MON_PORT]
#
# DIR is created (emptied first). Ports default to 7480 and 3300; pass free ones to run
# several clusters side by side. BLOCK_SIZE (bytes, default 4 GiB; sparse) sizes the OSD.
# OBJECTSTORE=memstore keeps the OSD's data in memory (no disk flushes: for tests, where
# only RGW's semantics matter); the default, bluestore on a file, is what benchmarks use.
# On success prints `endpoint=http://127.0.0.1:PORT` and `pids=...` (one line each) and
# writes DIR/pids; stop with `kill $(cat DIR/pids)`. Test user: testkey / testsecret.
#
# Packages: apt-get install -y --no-install-recommends ceph-mon ceph-osd ceph-mgr radosgw \
#           ceph-common uuid-runtime curl
# ms_mon_client_mode = crc is needed with auth off, or RGW hangs for 300 s.
# tcp_nodelay=1 on the beast frontend: without it small responses wait for delayed ACKs
# (measured: GET 55 ms -> 15 ms, ListObjectVersions 50 ms -> 20 ms).
set -euo pipefail
D=${1:?usage: ceph-rgw-local.sh DIR [RGW_PORT] [MON_PORT]}
PORT=${2:-7480}
MON_PORT=${3:-3300}
BLOCK_SIZE=${BLOCK_SIZE:-4294967296}
OBJECTSTORE=${OBJECTSTORE:-bluestore}
case "$OBJECTSTORE" in bluestore|memstore) ;; *) echo "OBJECTSTORE: bluestore or memstore" >&2; exit 2;; esac
for tool in monmaptool ceph-mon ceph-osd radosgw radosgw-admin ceph uuidgen curl; do
  command -v "$tool" >/dev/null || {
    echo "ceph-rgw-local.sh: '$tool' is missing; install the Debian packages: apt-get install" \
         "-y --no-install-recommends ceph-mon ceph-osd ceph-mgr radosgw ceph-common" \
         "uuid-runtime curl" >&2
    exit 3
  }
done
rm -rf "$D"; mkdir -p "$D"/{run,log,mon,osd,rgw}
D=$(cd "$D" && pwd); cd "$D"
FSID=$(uuidgen)
cat > ceph.conf <<EOF
[global]
fsid = $FSID
mon_host = v2:127.0.0.1:$MON_PORT
public_network = 127.0.0.0/8
ms_bind_ipv6 = false
ms_bind_msgr1 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
run_dir = $D/run
admin_socket = $D/run/\$name.asok
log_file = $D/log/\$name.log
pid_file = $D/run/\$name.pid
mon_data = $D/mon/\$cluster-\$id
osd_data = $D/osd/\$cluster-\$id
rgw_data = $D/rgw/\$cluster-\$id
keyring = $D/keyring
[osd]
osd_objectstore = $OBJECTSTORE
memstore_device_bytes = $BLOCK_SIZE
bluestore_block_path = $D/osd/\$cluster-\$id/block.file
bluestore_block_create = true
bluestore_block_size = $BLOCK_SIZE
osd_memory_target = 939524096
bluestore_cache_autotune = false
bluestore_cache_size = 134217728
[client.rgw.a]
rgw_frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
EOF
C="-c $D/ceph.conf"
monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT]" --fsid "$FSID" monmap >/dev/null
ceph-mon $C --mkfs -i a --monmap monmap
ceph-mon $C -i a
OU=$(uuidgen); ID=$(ceph $C osd new "$OU"); mkdir -p "osd/ceph-$ID"
ceph-osd $C -i "$ID" --mkfs --osd-uuid "$OU" 2>/dev/null
ceph-osd $C -i "$ID" 2>/dev/null
for _ in $(seq 240); do ceph $C osd stat 2>/dev/null | grep -q '1 up' && break; sleep 0.5; done
ceph $C osd stat | grep -q '1 up' || { echo "ceph-rgw-local.sh: the OSD did not come up; see $D/log" >&2; exit 4; }
radosgw $C -n client.rgw.a
radosgw-admin $C user create --uid=test --display-name=test --access-key=testkey \
  --secret=testsecret >/dev/null
for _ in $(seq 240); do curl -s -m 2 -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.5; done
curl -s -m 2 -o /dev/null "http://127.0.0.1:$PORT/" || { echo "ceph-rgw-local.sh: RGW did not answer on port $PORT; see $D/log" >&2; exit 5; }
PIDS=$(cat "$D"/run/*.pid | tr '\n' ' ')
echo "$PIDS" > "$D/pids"
echo "endpoint=http://127.0.0.1:$PORT"
echo "pids=$PIDS"
