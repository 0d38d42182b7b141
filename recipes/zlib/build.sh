# zlib: the static library and its two headers, nothing else.
# zlib's own configure is not autoconf (it refuses --host); it takes CC, AR,
# RANLIB and CFLAGS from the environment.
./configure --prefix=/ --static
make -j"$JOBS" libz.a
mkdir -p "$OUT/lib" "$OUT/include"
cp libz.a "$OUT/lib/libz.a"
cp zlib.h zconf.h "$OUT/include/"
chmod 644 "$OUT/lib/libz.a" "$OUT/include/zlib.h" "$OUT/include/zconf.h"
