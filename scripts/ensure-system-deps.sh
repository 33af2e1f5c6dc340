#!/bin/sh
# Makes sure the Debian packages the test suite needs are installed: installs them when missing
# and running as root, otherwise stops with one line saying what to install.
# Usage: ensure-system-deps.sh PACKAGE...   (chromium -> /usr/bin/chromium, others: the command of that name)
set -eu
missing=""
for pkg in "$@"; do
    case "$pkg" in
        chromium) test -x /usr/bin/chromium || missing="$missing $pkg" ;;
        *) command -v "$pkg" >/dev/null 2>&1 || missing="$missing $pkg" ;;
    esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    echo "installing Debian packages:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
else
    echo "missing system packages:$missing -- install them with: sudo apt-get install -y$missing" >&2
    exit 1
fi
