# iptables: the legacy backend (the kernel's x_tables; the nftables backend needs
# libmnl and libnftnl), static with every extension built in, as one multi-call binary.
./configure --host="$TRIPLE" --prefix=/ \
    --enable-static --disable-shared --disable-nftables \
    --disable-devel --disable-libipq --disable-bpf-compiler --disable-nfsynproxy \
    --disable-connlabel --without-kernel
make -j"$JOBS"
mkdir -p "$OUT/sbin"
cp iptables/xtables-legacy-multi "$OUT/sbin/xtables-legacy-multi"
chmod 755 "$OUT/sbin/xtables-legacy-multi"
for name in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -s xtables-legacy-multi "$OUT/sbin/$name"
done
