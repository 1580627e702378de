#!/usr/bin/env bash
# Lints docs/openapi.yaml with the Redocly CLI installed locally in .tools
# (scripts/deps.sh --test), with the recommended ruleset as configured in
# redocly.yaml.  Offline: telemetry and the update check are turned off.
# Exits 0 only when the lint reports no errors and no warnings.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
redocly="$top/.tools/node_modules/.bin/redocly"
spec="docs/openapi.yaml"
config="redocly.yaml"

if [ ! -x "$redocly" ]; then
    echo "lint_openapi: $redocly is missing; install it with scripts/deps.sh --test" >&2
    exit 1
fi
command -v node >/dev/null || {
    echo "lint_openapi: node is missing; install it with scripts/deps.sh --test" >&2
    exit 1
}
cd "$top"
if [ ! -f "$spec" ] || [ ! -f "$config" ]; then
    echo "lint_openapi: $spec or $config is missing" >&2
    exit 1
fi

# No usage data (also "telemetry: off" in redocly.yaml) and no check of the
# npm registry for a newer version.
export REDOCLY_TELEMETRY=off
export REDOCLY_SUPPRESS_UPDATE_NOTICE=true

# Redocly exits non-zero on errors only, so read the totals from its JSON
# report to fail on warnings too.
rc=0
json=$("$redocly" lint --config "$config" --format json --max-problems 1000 "$spec" 2>/dev/null) || rc=$?
totals=$(printf '%s' "$json" | node -e '
let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
    try {
        const t = JSON.parse(s).totals;
        console.log(`${t.errors} ${t.warnings}`);
    } catch (e) { console.log("? ?"); }
});') || totals="? ?"
read -r errors warnings <<<"$totals"

if [ "$rc" -eq 0 ] && [ "$errors" = 0 ] && [ "$warnings" = 0 ]; then
    echo "lint_openapi: $spec: OK (0 errors, 0 warnings)"
    exit 0
fi
# Show the problems readably.
"$redocly" lint --config "$config" --format codeframe --max-problems 1000 "$spec" >&2 || true
echo "lint_openapi: $spec: FAILED (redocly exit $rc, errors $errors, warnings $warnings)" >&2
exit 1
