#!/bin/sh
# HEALTHCHECK of the pulseboard image (installed as /usr/local/bin/pulseboard-healthcheck).
#
# `pulseboard serve` and `pulseboard all` answer GET /healthz on the HTTP port. The other roles
# (worker, scheduler, migrate, user) open no HTTP port: they count as healthy while they run,
# and Docker's restart policy takes care of one that exits.
set -eu

port="${PULSEBOARD_HTTP__PORT:-8080}"

# PID 1 is pulseboard itself, or an init (docker run --init / compose `init: true`) in front of it.
cmdline=" $(tr '\0' ' ' < /proc/1/cmdline 2>/dev/null || true) "
case "$cmdline" in
  *" worker "* | *" scheduler "* | *" migrate "* | *" user "*)
    exit 0
    ;;
esac

exec curl --fail --silent --show-error --output /dev/null --max-time 4 \
  "http://127.0.0.1:${port}/healthz"
