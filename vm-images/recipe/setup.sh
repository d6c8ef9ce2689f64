#!/bin/sh
# Runs inside the debootstrapped tree (chroot) after the overlay files are copied in.
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

useradd --create-home --shell /bin/sh --uid 1000 --user-group runsurge
# '*' = no password can match; sshd (without PAM) refuses keys for a locked ('!') account.
usermod -p '*' root
passwd -l runsurge >/dev/null
echo runsurge-guest > /etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 runsurge-guest\n' > /etc/hosts
# Root is mounted by the initramfs; no fsck on a throw-away overlay.
echo 'LABEL=rsroot / ext4 rw,noatime,errors=remount-ro 0 0' > /etc/fstab

systemctl enable runsurge-init.service ssh.service >/dev/null 2>&1
# Nothing that wakes up on its own: a pool VM should idle at ~0% CPU.
for unit in getty-static.service getty@tty1.service serial-getty@ttyS0.service apt-daily.timer \
        apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
        man-db.timer dpkg-db-backup.timer systemd-tmpfiles-clean.timer \
        systemd-timesyncd.service; do
    systemctl mask "$unit" >/dev/null 2>&1
done

rm -f /etc/ssh/ssh_host_*
update-initramfs -u -k all >/dev/null 2>&1

apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* \
    /usr/share/info/* /var/log/*.log /tmp/* /root/.bash_history
: > /etc/machine-id
