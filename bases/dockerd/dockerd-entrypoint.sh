#!/bin/sh
# As the official docker:dind entry point does: no arguments, or options first, start the
# engine with them (`IMAGE --cgroup-parent=/node1 --insecure-registry registry:5000`);
# anything else runs as it is (`IMAGE docker version`).
set -eu

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- dockerd "$@"
fi
exec "$@"
