# Compile main.rs into $OUT/bin/greet: as small as plain stable rustc makes it, static.
mkdir -p "$OUT/bin"
"$RUSTC" --edition 2021 -C opt-level=z -C panic=abort -C codegen-units=1 \
    -C strip=symbols -C linker=rust-lld -C target-feature=+crt-static \
    --remap-path-prefix=/build/src=recipes/greet \
    --crate-name greet --target "$CARGO_TARGET" -o "$OUT/bin/greet" main.rs
