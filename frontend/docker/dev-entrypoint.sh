#!/bin/sh
# Entry point of the dev image.
#
# node_modules is installed into the image at /app/node_modules. The compose
# service bind-mounts the source over /app and keeps an anonymous volume on
# /app/node_modules, which Docker seeds from the image the first time. Compose
# re-uses that volume when it recreates the container, so after a dependency
# change it can be stale: compare the lockfile's hash with the one recorded at
# install time and re-install (npm ci) when they differ.
set -eu
cd /app

lock_hash() { node -e 'const c=require("crypto"),f=require("fs");process.stdout.write(c.createHash("sha256").update(f.readFileSync(process.argv[1])).digest("hex"))' "$1"; }

if [ -f package-lock.json ] && [ "${SKIP_DEPS_CHECK:-false}" != true ]; then
  want=$(lock_hash package-lock.json)
  have=$(cat node_modules/.lockfile-sha256 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    echo "dev-entrypoint: package-lock.json differs from the installed node_modules; running npm ci" >&2
    if npm ci --no-audit --no-fund; then
      printf '%s' "$want" > node_modules/.lockfile-sha256
    else
      echo "dev-entrypoint: npm ci failed; starting with the node_modules there is" >&2
    fi
  fi
fi

exec "$@"
