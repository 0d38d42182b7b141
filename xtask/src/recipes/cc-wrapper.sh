#!/bin/sh
# amber's C compiler wrapper (recipes.rs): `zig @TOOL@ -target @TRIPLE@` for the
# recipe's architecture. zig's lld rejects a few GNU ld options (DESIGN §9, busybox):
# --warn-common, --sort-common, --sort-section[=]X, -Map[=]FILE and --verbose are
# dropped, given as -Wl,... lists, as -Xlinker pairs or bare. A target given by the
# caller (the cc crate passes --target=x86_64-unknown-linux-musl, a triple zig does not
# parse) is dropped too: the wrapper's target is the recipe's.
set -f
pending=
xlinker=
skip=
filtered() {
    case $1 in
        --warn-common | --sort-common | --sort-section=* | -Map=* | --verbose) return 0 ;;
        *) return 1 ;;
    esac
}
takes_value() {
    case $1 in
        --sort-section | -Map) return 0 ;;
        *) return 1 ;;
    esac
}
for arg do
    shift
    if [ -n "$skip" ]; then
        skip=
        continue
    fi
    if [ -n "$xlinker" ]; then
        xlinker=
        if [ -n "$pending" ]; then
            pending=
        elif filtered "$arg"; then
            :
        elif takes_value "$arg"; then
            pending=1
        else
            set -- "$@" -Xlinker "$arg"
        fi
        continue
    fi
    case $arg in
        -Xlinker)
            xlinker=1
            ;;
        -Wl,*)
            kept=
            old_ifs=$IFS
            IFS=,
            for word in ${arg#-Wl,}; do
                if [ -n "$pending" ]; then
                    pending=
                elif filtered "$word"; then
                    :
                elif takes_value "$word"; then
                    pending=1
                else
                    kept="$kept,$word"
                fi
            done
            IFS=$old_ifs
            if [ -n "$kept" ]; then
                set -- "$@" "-Wl$kept"
            fi
            ;;
        --warn-common | --sort-common | --sort-section=* | --verbose | --target=*)
            ;;
        -target | --target)
            skip=1
            ;;
        *)
            set -- "$@" "$arg"
            ;;
    esac
done
exec @ZIG@ @TOOL@ -target @TRIPLE@ "$@"
