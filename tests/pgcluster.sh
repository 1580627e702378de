#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests: nobody sets anything up by hand.
#
#   tests/pgcluster.sh start DIR   initdb in DIR, start on a unix socket in DIR;
#                                  prints the server URL (postgresql:///postgres?host=DIR&port=P)
#   tests/pgcluster.sh stop DIR    stop it and remove DIR
#
# For a look inside after a benchmark: PGCLUSTER_OPTS adds server options at
# start (e.g. "-c shared_preload_libraries=pg_stat_statements"), and
# PGCLUSTER_KEEP=1 makes stop leave the cluster running.
#
# PostgreSQL refuses to run as root, so as root the cluster runs as the
# "postgres" user (created by Debian's package).
set -eu
cmd=$1
dir=$2
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "pgcluster: PostgreSQL server binaries not found" >&2; exit 1; }

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    chmod 700 "$dir"
    as_pg "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    # A port number only names the socket file; nothing listens on TCP.
    port=$(( 20000 + $$ % 20000 ))
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 ${PGCLUSTER_OPTS:-}" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgresql:///postgres?host=$dir&port=$port&user=postgres"
    ;;
stop)
    [ -n "${PGCLUSTER_KEEP:-}" ] && { echo "pgcluster: kept $dir" >&2; exit 0; }
    if [ -d "$dir/data" ]; then
        as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
