#!/bin/sh
# Container health check of the production image: GET http://127.0.0.1:8080/
# with curl, which both nginx bases ship (the official image and localbase's).
exec curl -fsS -o /dev/null --max-time 4 http://127.0.0.1:8080/
