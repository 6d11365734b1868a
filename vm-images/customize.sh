#!/bin/sh
# mmdebstrap's customize hook for the appliance (`cargo xtask vm-image`), as
# `customize.sh ROOT DEB BOOT`: ROOT is the finished Debian tree, DEB the dcwatch-sensor package,
# BOOT where the kernel and initrd go (the boot partition's files). Installs the package and the
# appliance's own files, switches on what must run and off what must not listen, and strips what
# an appliance never reads.
set -eu
root=$1
deb=$2
boot=$3
here=$(dirname "$0")

cp -r "$here/rootfs/." "$root/"
cp "$deb" "$root/tmp/dcwatch-sensor.deb"
chroot "$root" dpkg --install /tmp/dcwatch-sensor.deb
rm "$root/tmp/dcwatch-sensor.deb"

chroot "$root" systemctl enable systemd-networkd.service dcwatch-appliance-seed.service \
    dcwatch-sensor.service dcwatch-appliance-report.service
# SSH only when the seed asks for it, with host keys made on that appliance. No daily apt run:
# the appliance reaches its backend and nothing else, and is replaced rather than upgraded.
chroot "$root" systemctl disable ssh.service apt-daily.timer apt-daily-upgrade.timer
rm -f "$root"/etc/ssh/ssh_host_*
# Unique per appliance: made at first boot.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
echo dcwatch-sensor >"$root/etc/hostname"
install -d "$root/var/log/journal"

# Kernel modules a virtual appliance never loads (graphics, sound, radios, cameras...): about a
# third of the kernel's size.
modules=$(echo "$root"/lib/modules/*)
for tree in drivers/gpu drivers/media sound drivers/net/wireless net/wireless net/mac80211 \
    drivers/bluetooth net/bluetooth drivers/infiniband drivers/staging drivers/isdn \
    drivers/iio drivers/input/joystick drivers/input/touchscreen drivers/input/misc \
    drivers/net/can net/can drivers/usb/serial drivers/mtd fs/ocfs2 fs/gfs2 \
    fs/btrfs fs/xfs fs/nfs fs/nfsd fs/ceph fs/smb drivers/md drivers/scsi/lpfc \
    drivers/scsi/qla2xxx drivers/scsi/mpt3sas drivers/scsi/megaraid; do
    rm -rf "${modules:?}/kernel/$tree"
done
chroot "$root" depmod "${modules##*/}"
chroot "$root" update-initramfs -u -k all
cp "$root"/boot/vmlinuz-* "$boot/vmlinuz"
cp "$root"/boot/initrd.img-* "$boot/initrd.img"

# Documentation and locales never reach the tree (the build's dpkg path-exclude); the kernel
# and initrd go to the boot partition, where the bootloader finds them.
rm -rf "$root"/boot/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
    "$root"/var/lib/dpkg/*-old "$root"/var/log/*.log "$root"/var/log/apt/*
