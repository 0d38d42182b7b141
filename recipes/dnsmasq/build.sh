# dnsmasq: its own Makefile; COPTS turns off what a router's lan does not use.
make -j"$JOBS" CC="$CC" CFLAGS="$CFLAGS" LDFLAGS="$LDFLAGS" \
    COPTS="-DNO_DHCP6 -DNO_TFTP -DNO_AUTH -DNO_SCRIPT -DNO_LOOP -DNO_INOTIFY -DNO_ID"
mkdir -p "$OUT/sbin"
cp src/dnsmasq "$OUT/sbin/dnsmasq"
chmod 755 "$OUT/sbin/dnsmasq"
