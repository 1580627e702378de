#!/usr/bin/env bash
# ThreadSanitizer run (make TSAN=1 test-tsan): the delivery, crash, fault,
# SMTP client and bounce listener integration tests against
# build-tsan/mailcast, on both stores.
# Every process writes its reports to $build/tsan/; any report fails the run.
# tests/tsan.supp lists what is suppressed and why.
#
#   tests/tsan.sh BUILD_DIR [TEST_FILE...]   (default: the five files below)
set -u
cd "$(dirname "$0")/.."
build=${1:-build-tsan}
shift || true
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(tests/integration/test_delivery.py tests/integration/test_crash.py
    tests/integration/test_faults.py tests/integration/test_smtp_client.py
    tests/integration/test_bounce_listener.py)
top=$(pwd)
pgdir=$(mktemp -d /tmp/mailcast-pg.XXXXXX)
rmdir "$pgdir"
cleanup() { bash tests/pgcluster.sh stop "$pgdir"; }
trap cleanup EXIT
MAILCAST_TEST_PG_URL=$(bash tests/pgcluster.sh start "$pgdir") || exit 1
export MAILCAST_TEST_PG_URL
export MAILCAST_BIN="$top/$build/mailcast"
rm -rf "$build/tsan"
mkdir -p "$build/tsan"
export TSAN_OPTIONS="log_path=$top/$build/tsan/report second_deadlock_stack=1 suppressions=$top/tests/tsan.supp"
/usr/bin/python3 -m pytest -q -p no:cacheprovider "${tests[@]}"
rc=$?
reports=$(find "$build/tsan" -type f | wc -l)
if [ "$reports" -gt 0 ]; then
    echo "tsan: $reports report(s) in $build/tsan/:"
    grep -h -A3 "^WARNING: ThreadSanitizer" "$build"/tsan/* | head -n 40
    exit 1
fi
echo "tsan: no reports"
exit $rc
