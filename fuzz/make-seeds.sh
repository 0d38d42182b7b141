#!/bin/sh
# Regenerate the seed corpus of the `squashfs` fuzz target: a few small, real images
# made by mksquashfs and gensquashfs (SOURCE_DATE_EPOCH keeps them reproducible).
set -eu
cd "$(dirname "$0")"
out=corpus/squashfs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=0

tree=$work/tree
mkdir -p "$tree/sub/child" "$tree/empty"
printf 'inner\n' > "$tree/sub/child/inner.txt"
printf 'hello\n' > "$tree/hello"
seq 1 1500 > "$tree/numbers"            # several 4 KiB blocks and a tail
head -c 9000 /dev/zero > "$tree/zeros"  # sparse blocks
printf 'odd' > "$tree/with space"
ln -s hello "$tree/link"
ln "$tree/hello" "$tree/hard"
mkfifo "$tree/fifo"
mknod "$tree/null" c 1 3 2>/dev/null || true

big=$work/bigdir
mkdir -p "$big/d"
i=0
while [ $i -lt 600 ]; do : > "$big/d/entry-$(printf %05d $i)"; i=$((i + 1)); done

mksquashfs "$tree" "$out/seed-mksquashfs-gzip" -noappend -all-root -quiet -no-progress -nopad -b 4096
mksquashfs "$tree" "$out/seed-mksquashfs-raw" -noappend -all-root -quiet -no-progress -nopad -b 4096 -noI -noD -noF -noX
mksquashfs "$tree" "$out/seed-mksquashfs-options" -noappend -all-root -quiet -no-progress -nopad -b 4096 -Xwindow-size 9 -no-fragments
mksquashfs "$big" "$out/seed-mksquashfs-index" -noappend -all-root -quiet -no-progress -nopad
gensquashfs -c gzip -b 4096 -B 1024 -q -f --all-root -D "$tree" "$out/seed-gensquashfs-gzip"
ls -l "$out"
