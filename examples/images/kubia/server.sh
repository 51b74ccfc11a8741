#!/bin/sh
# A stand-in for luksa/kubia built from busybox: answers every HTTP request
# on port 8080 with "You've hit <hostname>" and logs each request.
echo "Kubia server starting..."
mkdir -p /www
echo "You've hit $(hostname)" > /www/index.html
httpd -f -vv -p 8080 -h /www &
# PID 1 has no default signal actions: handle SIGTERM so delete is quick.
trap 'kill $! 2>/dev/null; exit 0' TERM INT
wait
