#!/usr/bin/env bash
# Runs sealwatch against this machine's Podman, from source.
#
# Installs Podman when it is missing and starts its API service when nothing answers on the
# socket, saying so each time. Extra arguments go to sealwatch (e.g. --web.listen-address :9100).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
    socket=/run/podman/podman.sock
else
    socket="${XDG_RUNTIME_DIR:?XDG_RUNTIME_DIR is unset; log in as the user, or run as root}/podman/podman.sock"
fi

if ! command -v podman >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "run.sh: Podman is not installed; as root: apt-get install podman" >&2
        exit 1
    fi
    echo "run.sh: Podman is not installed: installing podman, runc and catatonit (apt-get)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends podman runc catatonit
fi

answers() { podman --url "unix://$socket" version >/dev/null 2>&1; }
if ! answers; then
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        echo "run.sh: the Podman API service is not running: starting podman.socket (systemd)"
        if [ "$(id -u)" -eq 0 ]; then systemctl enable --now podman.socket; else systemctl --user enable --now podman.socket; fi
    else
        log="${TMPDIR:-/tmp}/podman-service.log"
        echo "run.sh: the Podman API service is not running and there is no systemd: starting 'podman system service' in the background (log: $log)"
        mkdir -p "$(dirname "$socket")"
        nohup podman system service --time=0 "unix://$socket" >"$log" 2>&1 &
    fi
    for _ in $(seq 50); do answers && break; sleep 0.2; done
    answers || { echo "run.sh: Podman's API service did not come up on $socket" >&2; exit 1; }
fi

echo "run.sh: watching unix://$socket; metrics on /metrics of the listen address (default :9882)"
exec cargo run --release --locked -- --podman.url "unix://$socket" "$@"
