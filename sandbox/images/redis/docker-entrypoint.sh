#!/bin/bash
# Run redis-server as the redis user, as the official image does; options
# given without the program name are passed to redis-server.
set -euo pipefail
case "${1:-redis-server}" in
  redis-server) shift || true ;;
  -*) ;;
  *) exec "$@" ;;
esac
config=()
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then config=("$1"); shift; fi
exec setpriv --reuid=redis --regid=redis --init-groups \
  redis-server "${config[@]}" --protected-mode no --dir /data "$@"
