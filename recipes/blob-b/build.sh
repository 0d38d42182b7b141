# 512 KiB of deterministic bytes no compressor can shrink, seeded by the package name.
"$HOSTCC" -O2 -o /build/tmp/gen gen.c
mkdir -p "$OUT/share/blob-b"
/build/tmp/gen blob-b 524288 > "$OUT/share/blob-b/data"
