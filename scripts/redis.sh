#!/usr/bin/env bash
# Makes sure `redis-server` is installed, for the shared-quota tests and the store
# benchmark (they start their own server on a free loopback port and stop it afterwards).
#
# Usage: scripts/redis.sh
#   As root, installs Debian's redis-server package when it is missing (the service it
#   sets up is stopped again: the tests need only the binary). Otherwise says how to.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  redis-server --version
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "redis-server is missing; install it with: sudo apt-get install -y redis-server" >&2
  echo "(or put a redis-server binary of Redis 6 or later on PATH), then run the tests again" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends redis-server; then
  apt-get update
  apt-get install -y --no-install-recommends redis-server
fi
# The package may start a system-wide server on port 6379; the tests do not use it.
if command -v service >/dev/null 2>&1; then
  service redis-server stop >/dev/null 2>&1 || true
fi
redis-server --version
