#!/usr/bin/env bash
# Installs what mailcast needs to build, run and test, from Debian's packages
# (and, pinned, @redocly/cli and @stoplight/prism-cli from npm, installed
# once per user and linked from ./.tools, git-ignored; the web console's own
# modules are installed by make into console/node_modules).  Idempotent: when
# everything is present it prints nothing and returns in well under a second.
#
#   scripts/deps.sh          build and run dependencies
#   scripts/deps.sh --test   also the test tools
set -eu

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

build_pkgs="gcc make pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev
libpq-dev libcsv-dev libidn2-dev libevent-dev libssl-dev libopendkim-dev uuid-dev libxml2-dev
libgmime-3.0-dev libcurl4-openssl-dev nodejs"
test_pkgs="libcmocka-dev postgresql postfix python3-pytest python3-requests python3-psycopg2
python3-aiosmtpd python3-dkim python3-selenium python3-cryptography python3-pytest-xdist python3-yaml chromium chromium-driver openssl
jq fonts-noto-color-emoji fonts-wqy-microhei fonts-dejavu clang libclang-rt-14-dev"

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

# Debian's nodejs comes without npm (NodeSource's includes it); the web
# console's build step (make) needs it.
if ! command -v npm >/dev/null 2>&1; then
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

# npm_tool BIN PACKAGE@VERSION: links .tools/node_modules/.bin/BIN to PACKAGE
# installed once per user and version in $MAILCAST_TOOLS_CACHE (default
# ~/.cache/mailcast-tools), so a fresh clone or worktree does not spend most
# of a minute reinstalling the same pinned tools.  An install goes to a
# temporary directory renamed into place: clones installing at once do not
# see half a tool.
npm_tool() {
    top=$(cd "$(dirname "$0")/.." && pwd)
    [ -x "$top/.tools/node_modules/.bin/$1" ] && return 0
    cache="${MAILCAST_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mailcast-tools}/$2"
    if [ ! -x "$cache/node_modules/.bin/$1" ]; then
        command -v npm >/dev/null || {
            echo "deps: npm not found (Debian's nodejs ships it as package npm)" >&2
            exit 1
        }
        echo "deps: installing $2 into $cache" >&2
        mkdir -p "$(dirname "$cache")"
        tmp=$(mktemp -d "$cache.XXXXXX")
        echo '{"private":true}' >"$tmp/package.json"
        (cd "$tmp" && npm install --no-audit --no-fund --silent "$2" >/dev/null)
        mv -T "$tmp" "$cache" 2>/dev/null || rm -rf "$tmp" # another clone was first
    fi
    mkdir -p "$top/.tools/node_modules/.bin"
    ln -sfn "$cache/node_modules/.bin/$1" "$top/.tools/node_modules/.bin/$1"
}

if [ $want_test = 1 ]; then
    npm_tool redocly @redocly/cli@1.34.20
    npm_tool prism @stoplight/prism-cli@5.16.0
fi
