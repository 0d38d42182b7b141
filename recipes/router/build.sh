# router: shell scripts and service files, nothing to compile.
mkdir -p "$OUT/share/router" "$OUT/svc"
for name in firewall dnsmasq; do
    cp "$FILES/$name" "$OUT/share/router/$name"
    cp "$FILES/$name.svc" "$OUT/svc/$name"
    chmod 644 "$OUT/share/router/$name" "$OUT/svc/$name"
done
