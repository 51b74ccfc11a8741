#!/bin/sh
# Prepare a Debian 12 machine for minipod, idempotently:
#   1. Debian packages: Python's venv and headers (python-prctl compiles),
#      libcap-dev, busybox-static (test and demo images), iproute2, curl,
#      docker-registry and openssl (the tests' local registry, with TLS)
#   2. a virtual environment REPO/.venv from the system's python3 (Debian's
#      interpreter starts ~4x faster than a pyenv build; every command pays it)
#   3. minipod installed there and linked as /usr/local/bin/minipod (a regular
#      install, compiled: an editable one costs every command ~18 ms of imports)
# Vagrant runs it as the box's provisioner; .ci/run and examples/demo.sh too.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
# One provisioning at a time (parallel test runs would race in pip).
exec 9>"/tmp/minipod-provision.lock"
flock 9
packages="python3-venv python3-dev gcc libcap-dev busybox-static iproute2 curl util-linux
          docker-registry openssl libseccomp2 nftables debootstrap"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "provision: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $missing >/dev/null
fi
venv="$repo/.venv"
if [ ! -x "$venv/bin/python" ]; then
    echo "provision: creating $venv"
    /usr/bin/python3 -m venv "$venv"
fi
# Reinstall only when the sources changed (the stamp holds their hash).
stamp="$venv/.minipod-installed"
want=$(cd "$repo" && find pyproject.toml bin minipod runtime netns rootfs cgroups -name '*.py' -o -name '*.json.gz' \
       -o -name pyproject.toml -o -path bin/minipod | sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "provision: installing minipod and its dependencies into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check wheel
    "$venv/bin/pip" install -q --disable-pip-version-check "$repo[test]"
    echo "$want" > "$stamp"
fi
ln -sf "$venv/bin/minipod" /usr/local/bin/minipod
echo "provision: ok ($(/usr/local/bin/minipod --version))"
