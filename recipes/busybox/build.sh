# busybox: our config, static, -Os; then one relative symlink per applet.
cp "$FILES/config" .config
# The config is complete; oldconfig only fails loudly if it is not.
make -s oldconfig HOSTCC="$HOSTCC" </dev/null
# CFLAGS and LDFLAGS come from the environment (busybox adds its own to them).
# SKIP_STRIP: the link is done with -s already and $STRIP may be a no-op.
# Only the binary and the applet list: `all` would also build the docs.
make -j"$JOBS" busybox busybox.links \
    CC="$CC" HOSTCC="$HOSTCC" AR="$AR" STRIP="$STRIP" \
    SKIP_STRIP=y
mkdir -p "$OUT/bin" "$OUT/sbin"
cp busybox "$OUT/bin/busybox"
chmod 755 "$OUT/bin/busybox"
# busybox.links lists /bin/ls, /usr/sbin/arp, ...: /usr is folded into the root,
# bin stays bin, sbin stays sbin. Links are relative, inside the package.
while read -r path; do
    app=${path##*/}
    case "$path" in
        /bin/*|/usr/bin/*) dir=bin target=busybox ;;
        /sbin/*|/usr/sbin/*) dir=sbin target=../bin/busybox ;;
        *) echo "busybox.links: unexpected $path" >&2; exit 1 ;;
    esac
    [ "$app" = busybox ] && continue
    if [ -e "$OUT/$dir/$app" ] || [ -L "$OUT/$dir/$app" ]; then
        echo "busybox.links: duplicate $app" >&2; exit 1
    fi
    ln -s "$target" "$OUT/$dir/$app"
done < busybox.links
test -L "$OUT/bin/sh"
