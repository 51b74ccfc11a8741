#!/bin/sh
# Build the kubia stand-in image from Debian's busybox-static, offline, and
# import it into minipod's store as luksa/kubia (docker.io/luksa/kubia:latest).
#   usage: sudo examples/images/kubia/build.sh [NAME]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
name=${1:-luksa/kubia}
busybox=$(command -v busybox || echo /bin/busybox)
[ -x "$busybox" ] || { echo "busybox not found: apt-get install busybox-static" >&2; exit 1; }
root=$(mktemp -d /tmp/minipod-kubia-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/www"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
cp "$here/server.sh" "$root/bin/kubia-server"
minipod image import "$root" "$name" --entrypoint '["/bin/kubia-server"]'
