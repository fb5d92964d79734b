#!/bin/sh
# Container health check of the production image: GET http://127.0.0.1:8080/
# with whichever HTTP client the nginx base provides (the official image has
# curl; a Debian nginx base may have neither curl nor wget, but has bash).
URL=http://127.0.0.1:8080/
if command -v curl >/dev/null 2>&1; then
  exec curl -fsS -o /dev/null --max-time 4 "$URL"
elif command -v wget >/dev/null 2>&1; then
  exec wget -q -O /dev/null -T 4 "$URL"
elif command -v bash >/dev/null 2>&1; then
  exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080 || exit 1
    printf "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3
    IFS= read -r status <&3 || exit 1
    case "$status" in "HTTP/1."?" 200 "*) exit 0 ;; *) exit 1 ;; esac'
fi
echo "healthcheck: no curl, wget or bash in this image" >&2
exit 1
