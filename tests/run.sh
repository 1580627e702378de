#!/usr/bin/env bash
# Runs every test: cmocka unit tests (store tests on SQLite and on a
# throwaway PostgreSQL), the Python integration tests on both stores (in
# parallel, MAILCAST_TEST_JOBS pytest-xdist workers, 6 by default), and the
# OpenAPI lint.  Ends with one line "N passed, N failed"; exits non-zero
# when anything failed or nothing ran.
#
#   tests/run.sh BUILD_DIR
set -u
cd "$(dirname "$0")/.."
build=${1:-build}
top=$(pwd)
passed=0
failed=0

# Scratch space (the tests' temp dirs, their SQLite files and the
# PostgreSQL cluster) on a tmpfs when there is one with room: the suite
# creates and deletes thousands of files and hundreds of databases, and on
# this machine's disk (ext4 mounted with discard) the kernel's block workers
# spent about 125 CPU seconds a run on them, on tmpfs about 45
# (docs/design/tests.md).  Readable by the postgres user, who runs the cluster.
scratch_root=/tmp
if [ -d /dev/shm ] && [ -w /dev/shm ] &&
    [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 {print $4}')" -gt 4194304 ] 2>/dev/null; then
    scratch_root=/dev/shm
fi
# A failed run's scratch is kept for its logs; those of runs two hours old
# go now (no run lasts that long), so they do not pile up in memory.
find "$scratch_root" -maxdepth 1 -name 'mailcast-test.*' -type d -mmin +120 \
    -exec rm -rf {} + 2>/dev/null
scratch=$(mktemp -d "$scratch_root/mailcast-test.XXXXXX")
chmod 755 "$scratch"
export TMPDIR="$scratch"
pgdir="$scratch/pg"
# Kept when something failed (the servers' logs are in the tests' dirs).
cleanup() {
    [ -n "${lint_pid-}" ] && kill "$lint_pid" 2>/dev/null
    bash tests/pgcluster.sh stop "$pgdir"
    if [ "$failed" -eq 0 ]; then
        rm -rf "$scratch"
    else
        echo "tests: the tests' temp dirs are kept in $scratch" >&2
    fi
}
trap cleanup EXIT
if ! MAILCAST_TEST_PG_URL=$(bash tests/pgcluster.sh start "$pgdir"); then
    echo "tests: cannot start the throwaway PostgreSQL cluster" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
export MAILCAST_TEST_PG_URL
# The binary of this build (build/ or build-san/), not ./mailcast, which
# another build may replace while the tests run.
export MAILCAST_BIN="$top/$build/mailcast"

# The OpenAPI lint (node, one core for about 4 s) runs beside the unit
# tests, which run one at a time: the second core is idle meanwhile.
bash tests/lint_openapi.sh >"$scratch/lint.log" 2>&1 &
lint_pid=$!

echo "== unit tests"
for t in $(find "$build/tests" -type f -perm -u+x | sort); do
    out=$("$t" 2>&1)
    rc=$?
    echo "$out" | grep -E '^\[  (FAILED|  OK  |PASSED  |ERROR   )' | grep -v '^\[       OK' || true
    p=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "$out" | tail -n 20
        echo "unit: $t crashed (exit $rc)"
        f=1
    fi
    [ "$f" -gt 0 ] && echo "$out" | grep -B5 -E 'FAILED|ERROR' | head -n 60
    passed=$((passed + p))
    failed=$((failed + f))
    echo "$(basename "$t"): $p passed, $f failed"
done

echo "== fuzz corpus replay"
for f in "$build"/fuzz/*_replay; do
    [ -x "$f" ] || continue
    name=$(basename "$f" _replay)
    if "$f" "tests/fuzz/corpus/${name#fuzz_}"; then
        passed=$((passed + 1))
    else
        echo "fuzz replay: $name failed"
        failed=$((failed + 1))
    fi
done

echo "== integration tests"
xml="$build/pytest.xml"
rm -f "$xml"
# pytest-xdist: the tests mostly wait (on engines, workers, relays, a
# paced minute), so more workers than cores pays while the cores have room.
# With the scratch space on tmpfs and one store per browser test the suite
# needs about 600 CPU seconds (its servers, browsers, PostgreSQL and the
# kernel's share); on a quiet two-core machine 4 workers took 6:57 with the
# cores 70 % busy, 6 workers 5:35 at 87 % (docs/design/tests.md).  Each
# worker has its own temp dirs, SQLite files, PostgreSQL databases (random
# names on the one cluster) and free ports.
/usr/bin/python3 -m pytest tests/integration -q -p no:cacheprovider -n "${MAILCAST_TEST_JOBS:-6}" --durations=10 \
    -o junit_logging=system-err --junitxml="$xml" 2>&1 | tail -n 40
if [ -f "$xml" ]; then
    read -r p f < <(/usr/bin/python3 - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skip = sum(int(s.get("skipped", 0)) for s in suites)
# A skipped test is not a passed one: it counts as failed here.
print(t - bad - skip, bad + skip)
PY
)
    passed=$((passed + p))
    failed=$((failed + f))
else
    echo "integration: pytest produced no report"
    failed=$((failed + 1))
fi

echo "== OpenAPI lint"
if wait "$lint_pid"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi
cat "$scratch/lint.log"

[ $((passed + failed)) -eq 0 ] && failed=1
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
