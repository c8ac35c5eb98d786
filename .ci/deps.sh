#!/usr/bin/env bash
# Make sure Debian packages are installed: `.ci/deps.sh PKG...` (make run / make test call it).
# Missing ones are installed when we are root (apt-get), otherwise the exact command to run is
# printed and the script fails, so nothing half-builds. SPIKESERVE_SKIP_DEPS=1 skips the check.
set -u
[ "${SPIKESERVE_SKIP_DEPS:-0}" = 1 ] && exit 0
if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: not a Debian system; make sure these (Debian names) are installed: $*" >&2
    exit 0
fi
missing=()
for p in "$@"; do
    case $p in '#'*|'') continue ;; esac
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: missing Debian packages: ${missing[*]}" >&2
if [ "$(id -u)" != 0 ]; then
    echo "deps: install them with:  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null || {
    echo "deps: apt-get install failed; run:  apt-get install -y ${missing[*]}" >&2
    exit 1
}
echo "deps: installed ${missing[*]}" >&2
