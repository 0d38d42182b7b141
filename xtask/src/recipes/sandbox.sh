# The build sandbox (recipes.rs), run by `unshare --user --map-root-user --mount --net
# --fork` so it starts in fresh user, mount and network namespaces: no network (the new
# namespace has only a loopback that is down).
#
# usage: sh -eu sandbox.sh ROOT BUILD READONLY WRITABLE COMMAND...
#   ROOT      an empty directory: the mount point of the sandbox's new root
#   BUILD     the build tree, seen at /build inside
#   READONLY  colon-separated absolute host paths shown read-only at the same path
#   WRITABLE  colon-separated absolute host paths shown writable at the same path
#
# The new root is a tmpfs holding read-only binds of /usr and /etc (and the symlinks
# /bin, /lib, ... into /usr), /dev, /proc, a private tmpfs /tmp and the build tree.
# Nothing else of the host is there: not the repository, not /root, not /home.
# The command then runs in one more user and mount namespace: the mounts made here
# become locked there, so the build cannot remount them writable or look beneath.
set -eu
root=$1 build=$2 readonly=$3 writable=$4
shift 4

mount -t tmpfs -o mode=0755 amber-sandbox "$root"
for dir in usr etc; do
    mkdir "$root/$dir"
    mount --rbind "/$dir" "$root/$dir"
done
for link in bin sbin lib lib32 lib64 libx32; do
    if [ -L "/$link" ]; then
        ln -s "$(readlink "/$link")" "$root/$link"
    fi
done
mkdir "$root/dev" "$root/proc" "$root/tmp" "$root/build" "$root/old"
mount --rbind /dev "$root/dev"
mount --rbind /proc "$root/proc"
mount -t tmpfs -o mode=1777 amber-tmp "$root/tmp"
mount --bind "$build" "$root/build"
# The recipe's files are an input: read-only.
mount --bind "$build/files" "$root/build/files"
mount -o remount,bind,ro "$root/build/files"

bind_all() {
    mode=$1 list=$2
    old_ifs=$IFS
    IFS=:
    for path in $list; do
        IFS=$old_ifs
        [ -n "$path" ] || continue
        mkdir -p "$root$path"
        mount --bind "$path" "$root$path"
        if [ "$mode" = ro ]; then
            mount -o remount,bind,ro "$root$path"
        fi
    done
    IFS=$old_ifs
}
bind_all ro "$readonly"
bind_all rw "$writable"

# Every mount below /usr and /etc read-only, their submounts too (a container's
# /etc/hosts, say); /dev itself read-only, its submounts (ptys, /dev/shm) as they are.
mount -o remount,bind,ro "$root/dev"
awk '{ print $5 }' /proc/self/mountinfo | while read -r point; do
    case $point in
        "$root/usr" | "$root/usr/"* | "$root/etc" | "$root/etc/"*)
            mount -o remount,bind,ro "$point"
            ;;
    esac
done
mount -o remount,ro,bind "$root"

cd "$root"
pivot_root . old
umount -l /old
cd /build
exec unshare --user --map-root-user --mount -- "$@"
