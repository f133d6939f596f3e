#!/usr/bin/env bash
# Assembles what the image's runtime stage copies: the `iiot` binary, the shared libraries it
# loads (found with ldd, so a glibc build needs no distribution base image), a passwd entry for
# the numeric user it runs as, the CA bundle for TLS to brokers, and the empty data directory.
# The Dockerfile's builder stage runs it on the binary it compiles; CI runs it on the host's.
#
#   scripts/container-rootfs.sh BINARY OUT_DIR
#
# OUT_DIR/rootfs/ is copied to / (owned by root); OUT_DIR/data/ becomes /data (owned by the
# service's user). OUT_DIR is the build context of the Dockerfile's `host-binary` target.
set -euo pipefail
BIN="${1:?usage: container-rootfs.sh BINARY OUT_DIR}"
OUT="${2:?usage: container-rootfs.sh BINARY OUT_DIR}"
UID_GID=65532

rm -rf "$OUT/rootfs" "$OUT/data"
mkdir -p "$OUT/rootfs/usr/local/bin" "$OUT/rootfs/etc/ssl/certs" "$OUT/rootfs/tmp" "$OUT/data"
chmod 1777 "$OUT/rootfs/tmp"
# Debug information is for debuggers, not for a deployed image (it is most of a debug build).
objcopy --strip-debug "$BIN" "$OUT/rootfs/usr/local/bin/iiot"
chmod 0755 "$OUT/rootfs/usr/local/bin/iiot"

# Every library the dynamic loader resolves, and the loader itself, at the paths it uses.
ldd "$BIN" | awk '/=> \//{print $3} /^\s*\/[^ ]*ld-linux/{print $1}' | sort -u | while read -r lib; do
    mkdir -p "$OUT/rootfs$(dirname "$lib")"
    cp -L "$lib" "$OUT/rootfs$lib"
done
if ldd "$BIN" 2>&1 | grep -q 'not found'; then
    echo "container-rootfs: $BIN needs a library this machine lacks:" >&2
    ldd "$BIN" | grep 'not found' >&2
    exit 1
fi

printf 'root:x:0:0:root:/root:/sbin/nologin\niiot:x:%s:%s:iiot:/data:/sbin/nologin\n' "$UID_GID" "$UID_GID" \
    > "$OUT/rootfs/etc/passwd"
printf 'root:x:0:\niiot:x:%s:\n' "$UID_GID" > "$OUT/rootfs/etc/group"
# Names resolve from /etc/hosts first, then DNS (compose and Kubernetes service names).
printf 'hosts: files dns\n' > "$OUT/rootfs/etc/nsswitch.conf"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$OUT/rootfs/etc/ssl/certs/"
fi
