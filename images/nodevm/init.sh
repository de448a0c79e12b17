#!/bin/busybox sh
# The node VM's initramfs: Debian's cloud kernel has its virtio drivers as
# modules, so load them (in modules.dep order, listed in /modules.order),
# find the root disk by its serial (cvm-root), and hand over to systemd.
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /newroot
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
exec >/dev/console 2>&1

fail() {
  echo "cvm-initramfs: $*"
  echo o >/proc/sysrq-trigger
  sleep 1000
}

while read -r module; do
  insmod "/modules/$module" || fail "insmod $module failed"
done </modules.order

root=""
for attempt in $(seq 1 200); do
  for disk in /sys/block/vd*; do
    [ -e "$disk/serial" ] || continue
    [ "$(cat "$disk/serial")" = "cvm-root" ] && root="/dev/${disk##*/}"
  done
  [ -n "$root" ] && [ -b "$root" ] && break
  sleep 0.05
done
[ -n "$root" ] || fail "no disk with serial cvm-root"

mount -t ext4 -o rw "$root" /newroot || fail "cannot mount $root"
umount /proc /sys
mount --move /dev /newroot/dev
echo "cvm-initramfs: root $root, starting systemd"
exec switch_root /newroot /lib/systemd/systemd
