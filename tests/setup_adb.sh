#!/usr/bin/env bash
# The system part tests/test_adb.py needs: Android's adb (a real adb server on 127.0.0.1).
# Installed only when missing, only with apt-get, only as root; otherwise the adb server
# tests skip with the reason. Debian/Ubuntu's package is `adb`.
set -eu
if command -v adb >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_adb: adb missing and cannot install it here (needs root and apt-get); adb server tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends adb >/dev/null
