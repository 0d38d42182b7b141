# 4 MiB of deterministic bytes no compressor can shrink, seeded by the package name.
"$HOSTCC" -O2 -o /build/tmp/gen gen.c
mkdir -p "$OUT/share/big"
/build/tmp/gen big 4194304 > "$OUT/share/big/data"
