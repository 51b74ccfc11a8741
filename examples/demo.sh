#!/bin/sh
# The README's first command: from a fresh Debian 12 machine to a pod
# answering over its own IP.   usage: sudo examples/demo.sh [--keep]
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run it as root: sudo examples/demo.sh" >&2; exit 3; }
keep=${1:-}
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

vagrant/provision.sh
step examples/images/kubia/build.sh
step minipod images
echo; echo "First, the user's own example, with its two mistakes:"
step minipod run examples/kubia-manual-broken.yaml || true
step minipod run examples/kubia.yaml
step minipod get pods -o wide
ip=$(minipod get pod kubia-manual -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["podIP"])')
step curl -s --max-time 5 --retry 5 --retry-connrefused --retry-delay 1 "http://$ip:8080"
step minipod logs kubia-manual
step ip netns list
if [ "$keep" = "--keep" ]; then
    echo; echo "The pod keeps running. Remove it with: sudo minipod delete pod kubia-manual"
else
    step minipod delete pod kubia-manual
    step minipod get pods
    # With no pod left, the stopping agent also removes the bridge.
    step minipod agent stop
fi
