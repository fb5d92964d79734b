#!/bin/bash
# Docker health check: GET /health answers 200. Bash's /dev/tcp rather than a Python one-liner:
# the check runs every few seconds, and each start of Python with urllib cost about 60 ms of
# CPU, which showed up in the tail latency under load.
exec 3<>"/dev/tcp/127.0.0.1/${PORT:-8000}" || exit 1
printf 'GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
read -r -t 4 status <&3 && [[ $status == HTTP/1.?" 200 "* ]]
