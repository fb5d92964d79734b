#!/bin/sh
# Entry point of the production (nginx) image.
#
# Renders the server config from the template into /tmp/nginx/conf.d and runs
# nginx in the foreground with /etc/nginx/nginx.conf (which includes that
# directory). Writes only under /tmp, so it works with read_only: true plus a
# tmpfs on /tmp, on both the official nginx-unprivileged image and a Debian
# nginx base (it does not use the official /docker-entrypoint.sh, which renders
# into /etc/nginx/conf.d).
#
# Environment:
#   BACKEND_URL     upstream for /api/, /health, /docs, /openapi.json
#                   (scheme://host[:port], no path; default http://backend:8000)
# The backend host is resolved at request time with the nameservers of
# /etc/resolv.conf (Docker's embedded DNS on a compose network).
set -eu

TEMPLATE=/etc/nginx/frontend/default.conf.template
RUNTIME_DIR=/tmp/nginx

BACKEND_URL=${BACKEND_URL:-http://backend:8000}
# Drop trailing slashes: with a variable in proxy_pass, any path part would
# replace the whole request URI.
while [ "${BACKEND_URL%/}" != "$BACKEND_URL" ]; do BACKEND_URL=${BACKEND_URL%/}; done
case "$BACKEND_URL" in
  http://?*|https://?*) ;;
  *) echo "entrypoint: BACKEND_URL must look like http://host:port, got '$BACKEND_URL'" >&2; exit 64 ;;
esac
case "${BACKEND_URL#*://}" in
  */*|*\"*|*\'*|*\ *|*\;*|*\$*|*\\*)
    echo "entrypoint: BACKEND_URL must be scheme://host[:port] without a path, got '$BACKEND_URL'" >&2; exit 64 ;;
esac

RESOLVER=$(awk '$1 == "nameserver" { ns = $2; if (ns ~ /:/) ns = "[" ns "]"; out = out (out ? " " : "") ns } END { print out }' /etc/resolv.conf 2>/dev/null || true)
RESOLVER=${RESOLVER:-127.0.0.11}
export BACKEND_URL RESOLVER

mkdir -p "$RUNTIME_DIR/conf.d" "$RUNTIME_DIR/client_temp" "$RUNTIME_DIR/proxy_temp" \
         "$RUNTIME_DIR/fastcgi_temp" "$RUNTIME_DIR/uwsgi_temp" "$RUNTIME_DIR/scgi_temp"

# envsubst: both nginx bases ship it (gettext-base). Its argument lists the variables to
# replace, literally: no expansion wanted, hence the single quotes.
# shellcheck disable=SC2016
envsubst '${BACKEND_URL} ${RESOLVER}' < "$TEMPLATE" > "$RUNTIME_DIR/conf.d/default.conf"

echo "entrypoint: proxying API to $BACKEND_URL (resolver $RESOLVER)" >&2

if [ "$#" -eq 0 ]; then
  set -- nginx -g 'daemon off;'
fi
# -e: log start-up errors to stderr instead of the compiled-in
# /var/log/nginx/error.log, which is not writable on a read-only root.
if [ "$1" = nginx ]; then
  shift
  exec nginx -e stderr -c /etc/nginx/nginx.conf "$@"
fi
exec "$@"
