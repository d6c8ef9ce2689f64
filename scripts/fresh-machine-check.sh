#!/usr/bin/env bash
# `make demo` from a clean clone on a fresh Debian 12 machine, shown in a throw-away root (`make check-fresh`).
#
# A Debian 12 root with nothing beyond debootstrap's minbase, python3 and make (the base tarball is
# cached under /var/cache/runsurge/fresh-root/; the clone and every package install are fresh each
# run) gets a `git clone` of this repository, then:
#   (a) as an unprivileged user, `make demo` must print the exact command to run, exit non-zero and
#       show no traceback;
#   (b) as root, `make demo` must complete: it installs the Debian packages itself, creates the venv,
#       builds the guest image, starts a master and two workers and runs a job in VMs.
# Everything runs in its own mount and PID namespaces: every mount and every process of the check
# (smbd, QEMU, the master) ends with it, whatever happens; the root's folder is then removed.
#
#   scripts/fresh-machine-check.sh [--keep]   (root; --keep leaves the root's folder for a look)
# Environment: RUNSURGE_FRESH_CACHE (base tarball cache), RUNSURGE_FRESH_WORK (where the root is
# made, default /var/tmp), RUNSURGE_FRESH_LOGS (where the two logs go, default the root's folder's
# parent: printed at the end), RUNSURGE_DEBIAN_MIRROR (default: this machine's apt mirror),
# RUNSURGE_FRESH_TEST_ARGS (if set: then (c) `make test PYTEST_ARGS=...` as root in the same root, e.g.
# '-k "setup_system or postgresql or api_docs"': the suite's own set-up and a part of it).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SUITE=bookworm
CACHE=${RUNSURGE_FRESH_CACHE:-/var/cache/runsurge/fresh-root}
WORK=${RUNSURGE_FRESH_WORK:-/var/tmp}
USER_ID=1000
PATH_IN=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf 'fresh-check [%s]: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [ "${1:-}" = --inner ]; then
  # PID 1 of a new PID namespace with a private mount namespace: mount what a booted machine has
  # (udev's /dev, systemd's /sys/fs/cgroup), then the two runs. Our exit ends every process left.
  R=$2 LOGS=$3
  mapfile -t NETENV <"$4"  # this network's proxy/CA environment (net_config below)
  mount -t proc proc "$R/proc"
  mount -t sysfs sysfs "$R/sys"
  mount --rbind /sys/fs/cgroup "$R/sys/fs/cgroup"  # systemd mounts these on a real machine
  mount --bind /dev "$R/dev"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$R/dev/pts"
  mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"
  mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
  stamp() { while IFS= read -r line; do printf '[%5ds] %s\n' $(($(date +%s) - t0)) "$line"; done; }
  fail=0
  say "(a) make demo as an unprivileged user"
  t0=$(date +%s)
  set +e
  chroot --userspec=$USER_ID:$USER_ID "$R" /usr/bin/env -i HOME=/home/fresh USER=fresh PATH=$PATH_IN LANG=C.UTF-8 "${NETENV[@]}" \
    sh -c 'cd ~/runsurge && make demo' </dev/null 2>&1 | stamp >"$LOGS/a-unprivileged.log"
  rc=${PIPESTATUS[0]}
  set -e
  say "(a) exit $rc after $(($(date +%s) - t0))s; its output:"
  sed 's/^/    /' "$LOGS/a-unprivileged.log" >&2
  if [ "$rc" = 0 ]; then say "(a) FAIL: exit 0 without root"; fail=1; fi
  if grep -q Traceback "$LOGS/a-unprivileged.log"; then say "(a) FAIL: a traceback"; fail=1; fi
  if ! grep -q '^\[ *[0-9]*s\] run: ' "$LOGS/a-unprivileged.log"; then say "(a) FAIL: no command to run"; fail=1; fi
  say "(b) make demo as root (installs the Debian packages, the venv, the guest image; runs the job)"
  t0=$(date +%s)
  set +e
  chroot "$R" /usr/bin/env -i HOME=/root USER=root PATH=$PATH_IN LANG=C.UTF-8 "${NETENV[@]}" \
    sh -c 'cd /root/runsurge && make demo' </dev/null 2>&1 | stamp >"$LOGS/b-root.log"
  rc=${PIPESTATUS[0]}
  set -e
  say "(b) exit $rc after $(($(date +%s) - t0))s; the last lines (all of it: $LOGS/b-root.log):"
  tail -n 40 "$LOGS/b-root.log" | sed 's/^/    /' >&2
  if [ "$rc" != 0 ]; then say "(b) FAIL: exit $rc"; fail=1; fi
  if grep -q Traceback "$LOGS/b-root.log"; then say "(b) FAIL: a traceback"; fail=1; fi
  if ! grep -q '\] demo complete$' "$LOGS/b-root.log"; then say "(b) FAIL: no 'demo complete'"; fail=1; fi
  if [ -n "${RUNSURGE_FRESH_TEST_ARGS:-}" ] && [ $fail = 0 ]; then
    # (c) `make test`'s own set-up (the test suite's Debian packages) and a part of the suite.
    say "(c) make test PYTEST_ARGS='$RUNSURGE_FRESH_TEST_ARGS' as root"
    t0=$(date +%s)
    set +e
    chroot "$R" /usr/bin/env -i HOME=/root USER=root PATH=$PATH_IN LANG=C.UTF-8 "${NETENV[@]}" \
      PYTEST_ARGS="$RUNSURGE_FRESH_TEST_ARGS" sh -c 'cd /root/runsurge && make test PYTEST_ARGS="$PYTEST_ARGS"' \
      </dev/null 2>&1 | stamp >"$LOGS/c-test.log"
    rc=${PIPESTATUS[0]}
    set -e
    say "(c) exit $rc after $(($(date +%s) - t0))s; the last lines (all of it: $LOGS/c-test.log):"
    tail -n 20 "$LOGS/c-test.log" | sed 's/^/    /' >&2
    [ "$rc" = 0 ] || { say "(c) FAIL: exit $rc"; fail=1; }
  fi
  exit $fail
fi

keep=0
[ "${1:-}" = --keep ] && keep=1
[ "$(id -u)" = 0 ] || { echo "fresh-check: needs root (debootstrap, chroot, mounts): run: sudo $0" >&2; exit 1; }
for tool in debootstrap unshare chroot git; do
  command -v $tool >/dev/null || { echo "fresh-check: needs $tool: run: apt-get install -y debootstrap git" >&2; exit 1; }
done

# This machine's Debian mirror (what a fresh machine's installer would have configured).
mirror=${RUNSURGE_DEBIAN_MIRROR:-$( { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
  awk '/^(URIs:|deb )/ { for (i = 2; i <= NF; i++) if (!found && $i ~ /^https?:.*\/debian\/?$/) { print $i; found = 1 } }
       END { if (!found) print "http://deb.debian.org/debian" }')}
key=$(printf '%s minbase python3,make %s' "$SUITE" "$mirror" | sha256sum | cut -c1-12)
base=$CACHE/$SUITE-minbase-$key.tar

tmp=$(mktemp -d "$WORK/runsurge-fresh.XXXXXX")
R=$tmp/root
LOGS=${RUNSURGE_FRESH_LOGS:-$tmp}
mkdir -p "$R" "$LOGS"
cleanup() {
  rc=$?
  # The namespaces took every mount with them; refuse to delete anything still mounted (a bind of
  # the host's /dev, say) rather than reach through it.
  if grep -q " $tmp/" /proc/self/mounts; then
    say "still mounted under $tmp (left in place): $(grep " $tmp/" /proc/self/mounts | cut -d' ' -f2 | tr '\n' ' ')"
  elif [ $keep = 1 ]; then
    say "kept $R"
  else
    # The logs stay (they are the evidence) when they are in the folder; the root goes.
    rm -rf --one-file-system "$R" "$tmp/base.partial" "$tmp/net.env"
    [ "$LOGS" = "$tmp" ] || rmdir "$tmp" 2>/dev/null || true
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$(date +%s)
if [ -f "$base" ]; then
  say "base root: cached $base"
else
  say "base root: debootstrap $SUITE (minbase + python3, make) from $mirror"
  debootstrap --variant=minbase --include=python3,make $SUITE "$tmp/base.partial" "$mirror" >"$LOGS/debootstrap.log" 2>&1 ||
    { tail -n 20 "$LOGS/debootstrap.log" >&2; exit 1; }
  rm -rf "$tmp/base.partial/var/cache/apt/archives/"*.deb
  mkdir -p "$CACHE"
  tar --numeric-owner -C "$tmp/base.partial" -cf "$base.tmp.$$" .
  mv "$base.tmp.$$" "$base"
  rm -rf --one-file-system "$tmp/base.partial"
fi
tar --numeric-owner -C "$R" -xf "$base"
t_base=$(($(date +%s) - started))
cp /etc/resolv.conf "$R/etc/resolv.conf"  # the installer would have configured the network
# This network's settings, as its admin would have put them on any machine here: the extra CAs (an
# intercepting proxy's), the CA bundle the settings below name, apt's proxy, pip's configuration
# and the proxy/CA environment. Local paths that the fresh root lacks (this machine's wheel caches,
# say) are left out: a fresh machine has none of them.
net_config() {
  if [ -d /usr/local/share/ca-certificates ]; then
    mkdir -p "$R/usr/local/share/ca-certificates"  # kept by update-ca-certificates when ca-certificates installs
    cp -a /usr/local/share/ca-certificates/. "$R/usr/local/share/ca-certificates/"
  fi
  for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
    if [ -f "$f" ] && grep -qi 'Acquire::[a-z]*::Proxy' "$f"; then cp "$f" "$R$f"; fi
  done
  # The CA bundles the environment and pip's configuration name, at the same paths in the root.
  local bundle
  for bundle in $(env | sed -n 's/^\(PIP_CERT\|SSL_CERT_FILE\|REQUESTS_CA_BUNDLE\|CURL_CA_BUNDLE\)=//p' | sort -u) \
      $(cat /etc/pip.conf /etc/xdg/pip/pip.conf "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf" 2>/dev/null |
        sed -n 's/^ *cert *= *//p'); do
    if [ -f "$bundle" ] && [ ! -e "$R$bundle" ]; then mkdir -p "$(dirname "$R$bundle")"; cp -L "$bundle" "$R$bundle"; fi
  done
  # pip's configuration (all its files, merged into the root's /etc/pip.conf) and the environment.
  local lines
  mapfile -t lines < <(R="$R" python3 - <<'PY'
import configparser, os, re
root = os.environ["R"]
def present(item):  # a local path or file: URL counts only if the fresh root has it
    path = item[len("file://"):] if item.startswith("file://") else item
    return not path.startswith("/") or os.path.exists(root + path)
def kept(value):
    return " ".join(i for i in value.split() if present(i))
files = ["/etc/xdg/pip/pip.conf", "/etc/pip.conf", os.path.expanduser("~/.pip/pip.conf"),
         os.path.expanduser("~/.config/pip/pip.conf"), os.environ.get("PIP_CONFIG_FILE", "")]
conf = configparser.ConfigParser(interpolation=None)
conf.read([f for f in files if f and f != os.devnull])
out = configparser.ConfigParser(interpolation=None)
for section in conf.sections():
    for key, value in conf.items(section, raw=True):
        if kept(value):
            if not out.has_section(section):
                out.add_section(section)
            out.set(section, key, kept(value))
if out.sections():
    with open(root + "/etc/pip.conf", "w") as f:
        out.write(f)
names = re.compile(r"(PIP_[A-Z_]+|(HTTPS?|FTP|ALL|NO)_PROXY|(https?|ftp|all|no)_proxy|SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE)$")
for name, value in sorted(os.environ.items()):
    if names.match(name) and name != "PIP_CONFIG_FILE" and kept(value):
        print(f"{name}={kept(value)}")
PY
  )
  : >"$tmp/net.env"
  [ ${#lines[@]} -eq 0 ] || printf '%s\n' "${lines[@]}" >"$tmp/net.env"
  say "network settings carried over: $(ls "$R/usr/local/share/ca-certificates" 2>/dev/null | tr '\n' ' ')" \
    "$([ -f "$R/etc/pip.conf" ] && echo "/etc/pip.conf ($(grep -c = "$R/etc/pip.conf") options)")" \
    "env: $(cut -d= -f1 "$tmp/net.env" | tr '\n' ' ')"
}
net_config
# Package scripts must not start daemons: in a chroot they would listen on this machine's network
# (a real machine starts them too, in its own network; none of them is what the demo uses).
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"
chroot "$R" useradd -m -u $USER_ID -s /bin/sh fresh
# Clean clones of what is committed here (a new user's `git clone`).
git clone -q --no-hardlinks "$REPO" "$R/home/fresh/runsurge"
chown -R $USER_ID:$USER_ID "$R/home/fresh/runsurge"
git clone -q --no-hardlinks "$REPO" "$R/root/runsurge"
say "root ready in ${t_base}s at $R (commit $(git -C "$REPO" rev-parse --short HEAD))"

set +e
unshare --mount --pid --fork --propagation private bash "$0" --inner "$R" "$LOGS" "$tmp/net.env"
rc=$?
set -e
say "total $(($(date +%s) - started))s; logs in $LOGS; $([ $rc = 0 ] && echo PASS || echo FAIL)"
exit $rc
