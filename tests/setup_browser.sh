#!/bin/sh
# The browser test of report.html (tests/integration/test_report_html.py) renders the page in
# Debian's chromium. Before `tox -e test`, install it when it is missing, where that is possible:
# apt-get is here and we are root (as on a fresh CI machine). Elsewhere say so and go on: that one
# test then skips with the reason. On CI (CI set), a failed install fails the set-up.
set -u
for browser in chromium chromium-browser google-chrome; do
    if command -v "$browser" >/dev/null 2>&1; then
        exit 0
    fi
done
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_browser: no chromium here and no root apt-get to install it: the browser test will skip"
    exit 0
fi
echo "setup_browser: installing chromium with apt-get (for the browser test of report.html)"
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq chromium >/dev/null; then
    exit 0
fi
echo "setup_browser: apt-get could not install chromium: the browser test will skip"
if [ -n "${CI:-}" ]; then
    exit 1
fi
exit 0
