#!/bin/sh
# Entry point of the production (nginx) image.
#
# Renders the server config from the templates into /tmp/nginx/conf.d and runs
# nginx in the foreground with /etc/nginx/nginx.conf (which includes that
# directory). Writes only under /tmp, so it works with read_only: true plus a
# tmpfs on /tmp, on both the official nginx-unprivileged image and a Debian
# nginx base (it does not use the official /docker-entrypoint.sh, which renders
# into /etc/nginx/conf.d).
#
# Environment:
#   BACKEND_URL        upstream for /api/, /health, /docs, /openapi.json
#                      (scheme://host[:port], no path; default http://backend:8000)
#   BACKEND_DISCOVERY  how nginx finds the backend's addresses (default reload):
#     reload  resolved here, not by nginx: its IPv4 addresses go into
#             backend-servers.conf, which the upstream block of
#             backend-reload.conf.template includes (an upstream keeps idle
#             connections to the backend; nginx 1.26 cannot re-resolve the names
#             in one by itself). A background loop resolves the host again every
#             RESOLVE_INTERVAL seconds (default 1) with the nameservers of
#             /etc/resolv.conf (Docker's embedded DNS on a compose network) and
#             reloads nginx when the addresses change: a stopped backend (no
#             address: a "down" placeholder, every API request gets the 502 at
#             once), a started or recreated one (new address), several replicas
#             (DNS round robin: one server line each).
#     dns     nginx resolves the name itself, at request time, with the
#             nameservers of /etc/resolv.conf (backend-dns.conf.template): it is
#             never reloaded, a replica that went away is skipped for the next
#             one; no idle connections to the backend are kept. For a backend
#             whose replicas come and go (Swarm, endpoint_mode: dnsrr).
#
# -f: no pathname expansion anywhere (address lists are split on blanks, and an
# IPv6 literal in brackets would otherwise be a pattern).
set -euf

TEMPLATES=/etc/nginx/frontend
RUNTIME_DIR=/tmp/nginx
SERVERS=$RUNTIME_DIR/backend-servers.conf
RESOLVE_INTERVAL=${RESOLVE_INTERVAL:-1}

BACKEND_DISCOVERY=${BACKEND_DISCOVERY:-reload}
case "$BACKEND_DISCOVERY" in
  reload|dns) ;;
  *) echo "entrypoint: BACKEND_DISCOVERY must be reload or dns, got '$BACKEND_DISCOVERY'" >&2; exit 64 ;;
esac

BACKEND_URL=${BACKEND_URL:-http://backend:8000}
# Drop trailing slashes: no path part, the request URI is passed on unchanged.
while [ "${BACKEND_URL%/}" != "$BACKEND_URL" ]; do BACKEND_URL=${BACKEND_URL%/}; done
case "$BACKEND_URL" in
  http://?*|https://?*) ;;
  *) echo "entrypoint: BACKEND_URL must look like http://host:port, got '$BACKEND_URL'" >&2; exit 64 ;;
esac
case "${BACKEND_URL#*://}" in
  */*|*\"*|*\'*|*\ *|*\;*|*\$*|*\\*)
    echo "entrypoint: BACKEND_URL must be scheme://host[:port] without a path, got '$BACKEND_URL'" >&2; exit 64 ;;
esac

BACKEND_SCHEME=${BACKEND_URL%%://*}
BACKEND_AUTHORITY=${BACKEND_URL#*://}
case "$BACKEND_AUTHORITY" in
  \[*\]:*|[!\[]*:*) BACKEND_HOST=${BACKEND_AUTHORITY%:*}; BACKEND_PORT=${BACKEND_AUTHORITY##*:} ;;
  *) BACKEND_HOST=$BACKEND_AUTHORITY; BACKEND_PORT= ;;
esac
if [ -z "$BACKEND_PORT" ]; then
  if [ "$BACKEND_SCHEME" = https ]; then BACKEND_PORT=443; else BACKEND_PORT=80; fi
fi
case "$BACKEND_PORT" in
  *[!0-9]*)
    echo "entrypoint: BACKEND_URL's port must be a number, got '$BACKEND_URL'" >&2; exit 64 ;;
esac
export BACKEND_SCHEME BACKEND_AUTHORITY BACKEND_HOST

# The backend's addresses, one a line (none while its name does not resolve). A
# name is looked up with a trailing dot, so that no search domain of resolv.conf
# is tried after it; IP literals are used as they are.
backend_addresses() {
  case "$BACKEND_HOST" in
    \[*) echo "$BACKEND_HOST" ;;
    *[!0-9.]*) getent ahostsv4 "$BACKEND_HOST." 2>/dev/null | awk '{ print $1 }' | sort -u ;;
    *) echo "$BACKEND_HOST" ;;
  esac
}

# The nameservers of /etc/resolv.conf for nginx's resolver directive, on one line:
# an IPv6 one in brackets, without a zone index (fe80::1%eth0).
nameservers() {
  awk '$1 == "nameserver" && $2 != "" {
    address = $2; sub(/%.*/, "", address)
    if (address ~ /:/) address = "[" address "]"
    printf "%s%s", separator, address; separator = " "
  }' /etc/resolv.conf 2>/dev/null
}

# The addresses on one line, for the log.
one_line() {
  # shellcheck disable=SC2086  # word splitting wanted
  set -- $1
  echo "$*"
}

# backend-servers.conf for these addresses: a server line each, or a placeholder
# marked down (nginx then answers "no live upstreams", a 502, at once).
write_servers() {
  if [ -z "$1" ]; then
    printf '# %s does not resolve\nserver 127.0.0.1:%s down;\n' "$BACKEND_HOST" "$BACKEND_PORT"
  else
    for address in $1; do
      printf 'server %s:%s max_fails=1 fail_timeout=1s;\n' "$address" "$BACKEND_PORT"
    done
  fi > "$SERVERS.new"
  mv "$SERVERS.new" "$SERVERS"
}

# Runs next to nginx (a child of it once the exec below has happened): resolves
# the backend again every RESOLVE_INTERVAL seconds and, when its addresses
# changed, rewrites backend-servers.conf and has nginx reload (SIGHUP: new
# workers, the old ones finish their requests).
watch_backend() {
  set +e  # a round that fails (a write, the signal) is tried again the next second
  current=$1
  while sleep "$RESOLVE_INTERVAL"; do
    addresses=$(backend_addresses)
    [ "$addresses" = "$current" ] && continue
    write_servers "$addresses"
    if kill -HUP "$(cat "$RUNTIME_DIR/nginx.pid" 2>/dev/null)" 2>/dev/null; then
      current=$addresses
      echo "entrypoint: $BACKEND_HOST now at [$(one_line "$addresses")]; nginx reloaded" >&2
    fi
  done
}

mkdir -p "$RUNTIME_DIR/conf.d" "$RUNTIME_DIR/client_temp" "$RUNTIME_DIR/proxy_temp" \
         "$RUNTIME_DIR/fastcgi_temp" "$RUNTIME_DIR/uwsgi_temp" "$RUNTIME_DIR/scgi_temp"

# envsubst: both nginx bases ship it (gettext-base). Its argument lists the variables to
# replace, literally: no expansion wanted, hence the single quotes. default.conf (the
# server) is the same in both modes; backend.conf (how $backend_url is reached) is the
# mode's own.
render() {
  # shellcheck disable=SC2016
  envsubst '${BACKEND_SCHEME} ${BACKEND_AUTHORITY} ${BACKEND_HOST} ${BACKEND_NAMESERVERS}' < "$1" > "$2"
}

if [ "$BACKEND_DISCOVERY" = dns ]; then
  BACKEND_NAMESERVERS=$(nameservers)
  if [ -z "$BACKEND_NAMESERVERS" ]; then
    echo "entrypoint: BACKEND_DISCOVERY=dns needs a nameserver in /etc/resolv.conf, found none" >&2; exit 64
  fi
  export BACKEND_NAMESERVERS
  found="resolved by nginx at request time (nameservers $BACKEND_NAMESERVERS; never reloaded)"
else
  addresses=$(backend_addresses)
  write_servers "$addresses"
  found="now at [$(one_line "$addresses")] (resolved again every $RESOLVE_INTERVAL s)"
fi
render "$TEMPLATES/default.conf.template" "$RUNTIME_DIR/conf.d/default.conf"
render "$TEMPLATES/backend-$BACKEND_DISCOVERY.conf.template" "$RUNTIME_DIR/conf.d/backend.conf"
echo "entrypoint: proxying API to $BACKEND_URL, $found" >&2

if [ "$#" -eq 0 ]; then
  set -- nginx -g 'daemon off;'
fi
# -e: log start-up errors to stderr instead of the compiled-in
# /var/log/nginx/error.log, which is not writable on a read-only root.
if [ "$1" = nginx ]; then
  shift
  if [ "$BACKEND_DISCOVERY" = reload ]; then
    watch_backend "$addresses" &
  fi
  exec nginx -e stderr -c /etc/nginx/nginx.conf "$@"
fi
exec "$@"
