#!/usr/bin/env bash
# Installs what mailcast needs to build, run and test, from Debian's packages
# (and @redocly/cli from npm into ./.tools, git-ignored).  Idempotent: when
# everything is present it prints nothing and returns in well under a second.
#
#   scripts/deps.sh          build and run dependencies
#   scripts/deps.sh --test   also the test tools
set -eu

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

build_pkgs="gcc make pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev
libpq-dev libcsv-dev libidn2-dev libevent-dev libssl-dev libopendkim-dev uuid-dev
libcurl4-openssl-dev"
test_pkgs="libcmocka-dev postgresql postfix python3-pytest python3-requests python3-psycopg2
python3-aiosmtpd python3-dkim python3-selenium chromium chromium-driver openssl nodejs"

pkgs=$build_pkgs
[ $want_test = 1 ] && pkgs="$pkgs $test_pkgs"

missing=""
for p in $pkgs; do
    s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$s" in
    "install ok installed") ;;
    *) missing="$missing $p" ;;
    esac
done

# Debian's nodejs comes without npm (NodeSource's includes it).
if [ $want_test = 1 ] && ! command -v npm >/dev/null 2>&1; then
    missing="$missing npm"
fi

if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "deps: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Postfix (smtp-sink, smtp-source) must not configure a mail daemon.
    echo "postfix postfix/main_mailer_type select No configuration" |
        $sudo debconf-set-selections
    $sudo apt-get update -qq >/dev/null
    $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ $want_test = 1 ]; then
    top=$(cd "$(dirname "$0")/.." && pwd)
    if [ ! -x "$top/.tools/node_modules/.bin/redocly" ]; then
        command -v npm >/dev/null || {
            echo "deps: npm not found (Debian's nodejs ships it as package npm)" >&2
            exit 1
        }
        echo "deps: installing @redocly/cli into .tools" >&2
        mkdir -p "$top/.tools"
        (cd "$top/.tools" && [ -f package.json ] || echo '{"private":true}' >package.json)
        (cd "$top/.tools" && npm install --no-audit --no-fund --silent @redocly/cli@1.34.20 >/dev/null)
    fi
fi
