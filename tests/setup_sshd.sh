#!/usr/bin/env bash
# The system parts tests/test_transports.py needs: OpenSSH's sshd (a real server on 127.0.0.1)
# and ssh-keygen. Installed only when missing, only with apt-get, only as root; otherwise the
# ssh tests skip with the reason.
set -eu
if command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_sshd: sshd missing and cannot install it here (needs root and apt-get); ssh tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
