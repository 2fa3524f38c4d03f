#!/bin/sh
# install-deps.sh [--test | --apache]: install the Debian packages llmgw
# needs, only those missing. Build + runtime always (node and npm build
# the admin page); --apache adds Apache
# (FRONT=apache); --test adds what the tests need, Apache included (the
# front-facing tests run behind lighttpd and behind Apache).
# Runs apt-get as root (or through sudo); prints the command otherwise.
set -eu

pkgs="gcc make pkg-config ca-certificates curl libfcgi-dev libjson-c-dev libpq-dev
libcurl4-openssl-dev libjwt-dev libssl-dev postgresql lighttpd spawn-fcgi"
# apache2-bin: the server and its modules, without the apache2 package's
# system site and service (llmgwctl runs Apache from its own rendered file).
if [ "${1:-}" = "--test" ]; then
    pkgs="$pkgs libcmocka-dev python3 python3-pytest python3-aiohttp procps openssl
prometheus apache2-bin clang iproute2 chromium
lintian logrotate dpkg-dev adduser"
elif [ "${1:-}" = "--apache" ]; then
    pkgs="$pkgs apache2-bin"
fi

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
# Node.js and npm build the admin page (deploy/ui: npm ci of its pinned
# libraries) and run the openai SDK and browser tests (chromium, driven by
# playwright-core). Any node >= 18 will do (some images ship their own
# nodejs build that bundles npm).
if ! { command -v node && command -v npm; } >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "install-deps: not root and no sudo; run as root:" >&2
    echo "  apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
# Do not let the postgresql package create and start a system cluster:
# llmgw runs its own under var/.
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    $sudo mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
