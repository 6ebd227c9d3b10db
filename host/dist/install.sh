#!/bin/sh
# Installs a release build: the binary, the plugin libraries, the systemd unit, and the
# service's config host/dist/config.toml (only where there is none yet). Run from the repository after
# `cargo build --release --workspace`, as root:
#
#   sh host/dist/install.sh            # into /
#   sh host/dist/install.sh /tmp/root  # into another root (packaging, tests)
#
# Layout:  /usr/local/bin/switchyard
#          /usr/local/lib/switchyard/plugins/lib*.so   (found beside the binary's ../lib)
#          /etc/switchyard/config.toml                 (host/dist/config.toml, store in /var/lib)
#          /etc/systemd/system/switchyard.service
#          /var/lib/switchyard                         (journal, logs, workspaces)
set -eu
root="${1:-}"
cd "$(dirname "$0")/../.."
# SWITCHYARD_BUILD: the folder of the build to install (default: the release build).
release="${SWITCHYARD_BUILD:-${CARGO_TARGET_DIR:-target}/release}"
if [ ! -x "$release/switchyard" ]; then
    echo "install: $release/switchyard is missing: run cargo build --release --workspace first" >&2
    exit 1
fi
install -d "$root/usr/local/bin" "$root/usr/local/lib/switchyard/plugins" \
    "$root/etc/switchyard" "$root/etc/systemd/system" "$root/var/lib/switchyard"
install -m 0755 "$release/switchyard" "$root/usr/local/bin/switchyard"
for plugin in "$release"/libswitchyard_*.so; do
    case "$plugin" in
        *test_*) continue ;; # test fixtures stay out
    esac
    install -m 0644 "$plugin" "$root/usr/local/lib/switchyard/plugins/"
done
install -m 0644 host/dist/switchyard.service "$root/etc/systemd/system/switchyard.service"
if [ ! -e "$root/etc/switchyard/config.toml" ]; then
    # The service's own config (never the checkout's config.toml, which is for trying it out).
    install -m 0644 host/dist/config.toml "$root/etc/switchyard/config.toml"
fi
echo "installed into ${root:-/}; next: docs/operations.md, \"Run as a service\""
