#!/usr/bin/env bash
# Headless Chromium and its WebDriver server, for the live dashboard's browser test
# (mod8-app/tests/dashboard_browser.rs), from Debian's packages `chromium` and
# `chromium-driver`. Idempotent: `up` twice is the same as `up` once. Nothing keeps running:
# the test starts chromedriver itself, on a free loopback port, and stops it.
#
#   scripts/browser.sh up    install what is missing (apt), check both start, print exports
#   scripts/browser.sh env   print the export lines only
#
# stdout carries only the `export` lines (callers `eval` them); apt's output goes to stderr.
set -euo pipefail

log() { printf '[browser] %s\n' "$*" >&2; }
die() { printf '[browser] error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

chromium_bin() { command -v chromium || command -v chromium-browser || true; }
chromedriver_bin() { command -v chromedriver || true; }

install_browser() {
    local missing=()
    [ -n "$(chromium_bin)" ] || missing+=(chromium)
    [ -n "$(chromedriver_bin)" ] || missing+=(chromium-driver)
    if ((${#missing[@]})); then
        log "installing with apt: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    [ -n "$(chromium_bin)" ] || die "chromium is not installed"
    [ -n "$(chromedriver_bin)" ] || die "chromedriver is not installed"
    # Both must run here (a missing shared library shows now, not in the test).
    local version
    version=$("$(chromium_bin)" --headless=new --no-sandbox --version 2>/dev/null) \
        || die "chromium does not start"
    log "$version"
    version=$("$(chromedriver_bin)" --version 2>/dev/null) || die "chromedriver does not start"
    log "$version"
}

print_env() {
    local chromium chromedriver
    chromium=$(chromium_bin)
    chromedriver=$(chromedriver_bin)
    [ -n "$chromium" ] && echo "export MOD8_CHROMIUM=${chromium}"
    [ -n "$chromedriver" ] && echo "export MOD8_CHROMEDRIVER=${chromedriver}"
    return 0
}

case "${1:-}" in
    up)
        install_browser >&2
        print_env
        ;;
    env)
        print_env
        ;;
    *)
        echo "usage: $0 up|env" >&2
        exit 2
        ;;
esac
