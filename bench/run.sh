#!/bin/sh
# `npm run bench`: installs the load tools if missing (Debian: nghttp2-client for h2load,
# redis-server for the Redis baseline; gcc and libev-dev for the shim that paces h2load's --rps
# every millisecond), builds the production sidecar (dist/), the bench (build/) and the shim,
# then runs the end-to-end gRPC bench. Arguments go to the bench: --runs N, --quick,
# --profile, --profile-subscribers N, --only NAME[,NAME]. `npm run bench:ab -- A [B] …`
# (`sh bench/run.sh ab …`) runs two builds side by side instead (bench/grpc-ab.ts).
set -eu
cd "$(dirname "$0")/.."
missing=""
command -v h2load >/dev/null 2>&1 || missing="$missing nghttp2-client"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
[ -f /usr/include/ev.h ] || missing="$missing libev-dev"
if [ -n "$missing" ]; then
  echo "installing:$missing" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
npm run --silent build
npx tsc -p bench/tsconfig.json
cc -O2 -Wall -shared -fPIC -o build/bench/h2load-1ms-timer.so bench/grpc/h2load-1ms-timer.c -ldl
if [ "${1:-}" = ab ]; then
  shift
  exec node build/bench/grpc-ab.js "$@"
fi
exec node build/bench/grpc-bench.js "$@"
