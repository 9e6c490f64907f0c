#!/bin/sh
# One HTTP exchange on stdin/stdout: read the request head, answer 500.
# Reading the head first matters: closing a socket with unread input makes
# the kernel send a reset, which clients may see before the response.
cr=$(printf '\r')
while read -r line; do
    [ -z "$line" ] || [ "$line" = "$cr" ] && break
done
version=$(cat /etc/keel-app/version 2>/dev/null || echo broken)
body="{\"status\": \"error\", \"version\": \"$version\"}"
printf 'HTTP/1.0 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s\n' \
    "$((${#body} + 1))" "$body"
