#!/bin/sh
# Regenerate the tool-made seeds of the text fuzz targets: three images made by
# `pkg pack`, their index and signature made by `pkg repo index`, the same index
# signed by the real `minisign`, the metas of two images, and two generations
# written by `pkg add`.
# The hand-written seeds next to them are committed as they are. Needs pkg
# (`cargo build -p amber-pkg`), minisign and unsquashfs. Everything is reproducible
# except pkg's signature, whose trusted comment carries the time of signing.
set -eu
cd "$(dirname "$0")"
pkg=$(realpath "${PKG:-../target/debug/pkg}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=0

# The secret half of checks::MINISIGN_KEY, from core's minisign known-answer tests.
cat > "$work/kat.key" <<'EOF'
untrusted comment: minisign encrypted secret key
RWQAAEIyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA8aW22ijRR7UDsXJdn2WaAGrKCH1hGlML74doP1Dbj1B3LaTyYgtZi4iVjnreRIAmwQBEy7qmESnn4wkJOv4/rOVt1rLIz9yiAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
EOF

repo=$work/repo/x86_64
mkdir -p "$repo" "$work/musl/lib" "$work/busybox/bin"
printf 'libc\n' > "$work/musl/lib/libc.so"
printf '#!/bin/sh\necho hello\n' > "$work/busybox/bin/busybox"
mkdir -p "$work/hello/bin"
printf '#!/bin/sh\necho hello\n' > "$work/hello/bin/hello"
"$pkg" pack -o "$repo/musl-1.2.4-r0.squashfs" --name musl --version 1.2.4-r0 \
    --arch x86_64 --provides libc --license MIT --description 'the C library' "$work/musl"
"$pkg" pack -o "$repo/busybox-1.36.1-r2.squashfs" --name busybox --version 1.36.1-r2 \
    --arch x86_64 --dep 'musl>=1.2' --dep zlib~1.3 --provides sh --provides vi \
    --license GPL-2.0-only --description 'The Swiss army knife of embedded Linux' \
    --recipe-hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 \
    "$work/busybox"
"$pkg" pack -o "$repo/hello-1.0-r0.squashfs" --name hello --version 1.0-r0 --arch x86_64 \
    --dep 'musl>=1.2' "$work/hello"
"$pkg" repo index --secret-key "$work/kat.key" --serial 1700000000 --expires 1800000000 "$repo"
minisign -S -s "$work/kat.key" -m "$repo/index" -x "$work/index.minisig" \
    -t "timestamp:1700000000	file:index" -c "signature from minisign secret key" >/dev/null

mkdir -p corpus/index corpus/meta corpus/minisign corpus/generation
cp "$repo/index" corpus/index/pkg-repo-index
cat "$repo/index.minisig" "$repo/index" > corpus/minisign/pkg-repo-index
cat "$work/index.minisig" "$repo/index" > corpus/minisign/minisign-tool-index
unsquashfs -cat "$repo/busybox-1.36.1-r2.squashfs" .pkg/meta > corpus/meta/pkg-pack-busybox
unsquashfs -cat "$repo/musl-1.2.4-r0.squashfs" .pkg/meta > corpus/meta/pkg-pack-musl
# Generations 1 and 2 of a store: musl, then hello on top of it.
store=$work/store
"$pkg" --root "$store" --no-wait add --allow-untrusted "$repo/musl-1.2.4-r0.squashfs"
"$pkg" --root "$store" --no-wait add --allow-untrusted "$repo/hello-1.0-r0.squashfs"
cp "$store/state/generations/1" corpus/generation/pkg-add-1
cp "$store/state/generations/2" corpus/generation/pkg-add-2
ls -l corpus/index corpus/meta corpus/minisign corpus/generation
