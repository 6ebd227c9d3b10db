#!/bin/sh
# Installs a release build: the binary, the plugin libraries, the systemd unit, and a config
# (only where there is none yet). Run from the repository after
# `cargo build --release --workspace`, as root:
#
#   sh host/dist/install.sh            # into /
#   sh host/dist/install.sh /tmp/root  # into another root (packaging, tests)
#
# Layout:  /usr/local/bin/switchyard
#          /usr/local/lib/switchyard/plugins/lib*.so   (found beside the binary's ../lib)
#          /etc/switchyard/config.toml                 (the shipped one, store in /var/lib)
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
    # The shipped config, with the store and secrets where the unit puts them.
    sed -e 's|^path = "data/switchyard.db".*|path = "/var/lib/switchyard/switchyard.db"|' \
        -e 's|^path = "data/events.jsonl"|path = "/var/lib/switchyard/events.jsonl"|' \
        -e 's|^secret_env = .*|secret_file = "$CREDENTIALS_DIRECTORY/webhook-secret"|' \
        -e 's|^token_env = .*|token_file = "$CREDENTIALS_DIRECTORY/github-token"|' \
        config.toml > "$root/etc/switchyard/config.toml"
fi
echo "installed into ${root:-/}; next: docs/operations.md, \"Run as a service\""
