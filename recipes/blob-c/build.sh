# 512 KiB of deterministic bytes no compressor can shrink, seeded by the package name.
"$HOSTCC" -O2 -o /build/tmp/gen gen.c
mkdir -p "$OUT/share/blob-c"
/build/tmp/gen blob-c 524288 > "$OUT/share/blob-c/data"
