#!/usr/bin/env bash
# The raster page (GET /) in Debian's headless Chromium, driven by tests/ui/ui_test.mjs
# (playwright-core with /usr/bin/chromium): see that file for what it checks. Installs the
# locked npm packages first when tests/ui/node_modules is missing or older than the lockfile.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${SPIKESERVE_BUILD:-build}
for tool in node npm /usr/bin/chromium; do
    command -v "$tool" >/dev/null || { echo "not ok - $tool is not installed (chromium: .ci/packages; node and npm come with the machine)"; exit 1; }
done
[ -x "$B/spikeserve" ] || { echo "not ok - $B/spikeserve is not built"; exit 1; }
stamp=tests/ui/node_modules/.package-lock.json
if [ ! -e "$stamp" ] || [ tests/ui/package-lock.json -nt "$stamp" ]; then
    (cd tests/ui && npm ci --no-audit --no-fund --loglevel=error) || { echo "not ok - npm ci in tests/ui"; exit 1; }
fi
SPIKESERVE_BUILD=$B node tests/ui/ui_test.mjs
