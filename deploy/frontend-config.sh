#!/bin/sh
# Writes the web app's runtime configuration (config.js) when the frontend container starts.
# Installed as /docker-entrypoint.d/40-pulseboard-config.sh in the nginx image, which runs it
# before nginx starts.
#
#   PULSEBOARD_API_URL   where the page finds the API (window.PULSEBOARD_API):
#                          unset/empty   -> same host as the page, port PULSEBOARD_API_PORT, same scheme
#                                           (the seed's layout: page on :80, API on :8080)
#                          same-origin   -> "" : the API is reached through the page's own origin
#                                           (a reverse proxy in front routes /api/ to the backend)
#                          https://...   -> that URL, e.g. https://api.example.com
#   PULSEBOARD_API_PORT  port for the first form, default 8080
#
# config.js in the image (frontend/config.js) is kept as config.dist.js; the generated file is
# that file plus one assignment at the end, so re-running this script is harmless.
set -eu

html_dir="${PULSEBOARD_HTML_DIR:-/usr/share/nginx/html}"
dist="${PULSEBOARD_CONFIG_DIST:-/usr/share/pulseboard/config.dist.js}"
api="${PULSEBOARD_API_URL:-}"
port="${PULSEBOARD_API_PORT:-8080}"

fail() {
  echo "pulseboard-config: $*" >&2
  exit 1
}

case "$api" in
  '')
    case "$port" in
      '' | *[!0-9]*) fail "PULSEBOARD_API_PORT must be a port number, got '$port'" ;;
    esac
    value="window.location.protocol + '//' + window.location.hostname + ':$port'"
    shown="<page scheme>//<page host>:$port"
    ;;
  same-origin)
    value="''"
    shown="same origin"
    ;;
  *)
    api="${api%/}"
    printf '%s' "$api" | grep -Eq '^https?://[A-Za-z0-9._~%+@:-]+(/[A-Za-z0-9._~%+@:/-]*)?$' \
      || fail "PULSEBOARD_API_URL must be an absolute http(s) URL without quotes or spaces, got '$api'"
    value="'$api'"
    shown="$api"
    ;;
esac

tmp="$html_dir/.config.js.$$"
{
  if [ -f "$dist" ]; then
    cat "$dist"
    echo
  fi
  echo "/* written at container start by 40-pulseboard-config.sh from PULSEBOARD_API_URL */"
  echo "window.PULSEBOARD_API = $value;"
} > "$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$html_dir/config.js"
echo "pulseboard-config: window.PULSEBOARD_API = $shown"
