#!/bin/sh
# The official valkey (and redis) images' entry point, reduced: options alone start the
# server; the server drops root for the valkey user and needs a writable /data; protected
# mode is off, as the official images compile it (a container publishes no port by itself),
# unless the command line or a configuration file given first sets it.
set -eu

log() { echo "entrypoint: $*" >&2; }

# `-x`, `--option` or `something.conf` first: the server's arguments.
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- valkey-server "$@"
fi

case "$1" in
    valkey-server | redis-server) ;;
    *) exec "$@" ;;
esac
# What only prints and exits (--version, --help, ...) runs as it is.
case "${2:-}" in
    -v | --version | -h | --help | --test-memory | --check-system) exec "$@" ;;
esac

if [ "$(id -u)" = '0' ]; then
    find . \! -user valkey -exec chown valkey '{}' +
    exec setpriv --reuid=valkey --regid=valkey --clear-groups -- "$0" "$@"
fi
if [ ! -w . ]; then
    log "$(pwd) is not writable by user $(id -u): mount a volume or tmpfs the user can write, or start as root"
    exit 1
fi

# Protected mode off, unless the command line or a configuration file given first sets it.
server="$1"
shift
given=
for arg in "$@"; do
    if [ "$arg" = --protected-mode ]; then
        given=yes
    fi
done
if [ "$#" -gt 0 ] && [ "${1%.conf}" != "$1" ] && grep -Eiq '^[[:space:]]*protected-mode[[:space:]]' "$1"; then
    given=yes
fi
if [ -z "$given" ]; then
    set -- "$@" --protected-mode no
fi
set -- "$server" "$@"

# Files the server writes (dumps, append-only files) are its own only.
if [ "$(umask)" = '0022' ]; then
    umask 0077
fi

exec "$@"
