#!/usr/bin/env bash
# Build a trimmed Debian root filesystem tarball, like the official debian:*-slim images:
# debootstrap minbase, then no docs, man pages, locales, apt lists or caches, and dpkg/apt
# configured so that later installs stay trimmed.
# Usage: build-rootfs.sh SUITE MIRROR OUTPUT_TAR [SECURITY_MIRROR]
# Writes OUTPUT_TAR only on success (nothing half-written is left behind).
set -euo pipefail

suite=$1 mirror=$2 output=$3 security_mirror=${4:-}

die() { echo "build-rootfs: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "debootstrap needs root: rerun as root (or use the official images on a machine with registry access)"
command -v debootstrap >/dev/null || die "debootstrap is not installed: run 'apt-get install -y debootstrap'"

work=$(mktemp -d "${TMPDIR:-/tmp}/rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    die "debootstrap of '$suite' from $mirror failed ($(grep -m1 '^E:' "$work/debootstrap.log" || tail -n1 "$work/debootstrap.log")): check that the mirror is reachable and serves '$suite'"
fi

# What the official slim images exclude, for this rootfs and every later dpkg install on it.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
CFG
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
Acquire::CompressionTypes::Order:: "gz";
APT::AutoRemove::SuggestsImportant "false";
CFG

{
    echo "deb $mirror $suite main"
    echo "deb $mirror $suite-updates main"
    [ -z "$security_mirror" ] || echo "deb $security_mirror $suite-security main"
} >"$root/etc/apt/sources.list"

find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{man,groff,info,lintian,linda,locale}/* \
       "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
       "$root"/var/lib/dpkg/*-old "$root"/var/log/* "$root"/tmp/* "$root"/root/.bash_history
# debootstrap leaves the build host's resolver and hostname behind; Docker provides both.
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"

mkdir -p "$(dirname "$output")"
tar --numeric-owner --xattrs -C "$root" -cf "$work/rootfs.tar" .
mv "$work/rootfs.tar" "$output"
