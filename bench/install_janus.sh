#!/bin/sh
# Janus 1.1.2 from Debian's package, for bench/relay_vs_janus.py. Does nothing when janus is present.
set -eu
if command -v janus >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q janus
