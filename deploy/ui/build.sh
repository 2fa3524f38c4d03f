#!/bin/sh
# build.sh OUT: build the admin page into OUT (make ui: build/ui).
# The browser libraries come from npm, pinned by package-lock.json
# (npm ci, only when node_modules is missing or older than the lock), and
# are copied beside the page's own files. Every asset goes under
# OUT/assets/<hash>/, the hash of all of them, so the fronts can let
# browsers keep assets for a year; index.html (no-cache) names the hash.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$1
if ! command -v npm >/dev/null 2>&1; then
    echo "ui: npm not found (deploy/install-deps.sh installs nodejs and npm)" >&2
    exit 1
fi
if [ ! -f "$here/node_modules/.package-lock.json" ] ||
    [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
tmp=$out.tmp
rm -rf "$tmp"
mkdir -p "$tmp/stage/vendor"
cp -R "$here/src/." "$tmp/stage/"
rm -f "$tmp/stage/index.html"
cp "$here/node_modules/uplot/dist/uPlot.iife.min.js" "$here/node_modules/uplot/dist/uPlot.min.css" \
    "$here/node_modules/uplot/LICENSE" "$tmp/stage/vendor/"
hash=$(cd "$tmp/stage" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)
mkdir -p "$tmp/assets"
mv "$tmp/stage" "$tmp/assets/$hash"
sed "s|@ASSETS@|assets/$hash|g" "$here/src/index.html" >"$tmp/index.html"
rm -rf "$out.old"
[ -d "$out" ] && mv "$out" "$out.old"
mv "$tmp" "$out"
rm -rf "$out.old"
