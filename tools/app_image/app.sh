#!/bin/sh
# Entrypoint of the keel-app test image (runs as PID 1 inside the container).
#
# APP_PORT / APP_HOST: where to listen.  The embedded stack runs the fleet with
# host networking, so each container binds its own loopback port.
# What the image serves is baked into its files, not its environment: a rolling
# update that copies the old container's environment onto a new image must
# still get the new image's behaviour.
#   /etc/keel-app/mode     "static": busybox httpd serves /www (incl. /health)
#                          "error":  every request gets HTTP 500 (the "broken" image)
#   /etc/keel-app/version  the version the image reports
port="${APP_PORT:-8080}"
host="${APP_HOST:-127.0.0.1}"
mode=$(cat /etc/keel-app/mode 2>/dev/null || echo static)

if [ "$mode" = "error" ]; then
    # busybox httpd only runs CGI under /cgi-bin/, so /health itself cannot be
    # made to fail there; a persistent nc listener hands each connection to
    # the error responder instead.
    /bin/busybox nc -ll -p "$port" "$host" -e /bin/error-responder &
else
    /bin/busybox httpd -f -p "$host:$port" -h /www &
fi
server=$!

# PID 1 gets no default signal handling: without this trap SIGTERM would be
# ignored and every `stop` would wait for the engine's kill timeout.
trap 'kill "$server" 2>/dev/null; wait "$server"; exit 0' TERM INT
wait "$server"
