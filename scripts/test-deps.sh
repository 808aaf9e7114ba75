#!/usr/bin/env bash
# The workstation tools telepod's tests use, installed when missing, so that `npm test` on a
# brand-new Debian/Ubuntu machine (as root) needs nothing installed by hand; the testbed installs
# its own cluster packages itself. Not root and something missing: says what, and fails.
#   sshfs (with fuse3) mounts pod volumes; openssh-client's sftp drives the agent's SFTP unit
#   test; conntrack lets the daemon forget its DNS redirects' NAT state; sudo and passwd let the
#   e2e tests act as a developer who is not root; curl and python3 are clients in the tests.
set -euo pipefail
PACKAGES="curl iproute2 util-linux nftables procps python3 sudo passwd sshfs openssh-client conntrack zsh fish"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "npm test needs these packages:$missing (install them, or run npm test as root on Debian/Ubuntu)" >&2
    exit 1
  fi
  echo "test-deps: installing$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true
