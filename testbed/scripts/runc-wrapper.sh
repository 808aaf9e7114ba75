#!/bin/sh
# runc as the testbed's containerd calls it. This VM withholds CAP_SYS_RESOURCE, so no process
# may lower its oom_score_adj, but the kubelet asks for negative values (-998 for every pod
# sandbox); clamp them to 0 in the OCI spec (config.json or an exec's process.json), then run
# Debian's runc unchanged. Installed as $TPBED_STATE/bin/runc by `testbed up`.
prev=""
for arg in "$@"; do
  case "$prev" in
    --bundle | -b) spec="$arg/config.json" ;;
    --process | -p) spec="$arg" ;;
  esac
  if [ -n "${spec:-}" ] && [ -f "$spec" ]; then
    sed -i -E 's/"oomScoreAdj":-[0-9]+/"oomScoreAdj":0/g' "$spec"
    spec=""
  fi
  prev=$arg
done
exec /usr/bin/runc "$@"
