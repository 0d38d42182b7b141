# dropbear: one static multi-call binary (dropbear, dbclient, dropbearkey, scp)
# against zlib from $DEPS, our localoptions.h, relative symlinks; the service and the
# user it runs as.
cp "$FILES/localoptions.h" localoptions.h
# The environment's CFLAGS/LDFLAGS (-ffunction-sections, --gc-sections) keep only
# the parts of the bundled libtomcrypt/libtommath in use: 420 KB instead of 590 KB.
./configure --host="$TRIPLE" --prefix=/ \
    --enable-static --enable-bundled-libtom --with-zlib="$DEPS" \
    --disable-lastlog --disable-utmp --disable-utmpx --disable-wtmp \
    --disable-wtmpx --disable-pututline --disable-pututxline
make -j"$JOBS" PROGRAMS="dropbear dbclient dropbearkey scp" MULTI=1
mkdir -p "$OUT/bin" "$OUT/sbin" "$OUT/svc" "$OUT/users"
cp dropbearmulti "$OUT/bin/dropbearmulti"
chmod 755 "$OUT/bin/dropbearmulti"
ln -s ../bin/dropbearmulti "$OUT/sbin/dropbear"
for p in dbclient dropbearkey scp; do
    ln -s dropbearmulti "$OUT/bin/$p"
done
cp "$FILES/files/dropbear.svc" "$OUT/svc/dropbear"
cp "$FILES/files/dropbear.user" "$OUT/users/dropbear"
chmod 644 "$OUT/svc/dropbear" "$OUT/users/dropbear"
