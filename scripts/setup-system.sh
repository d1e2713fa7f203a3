#!/usr/bin/env bash
# Installs the system packages the suite and the example need. Idempotent: does nothing when all
# are present. Must run as root (CI does); otherwise it only reports what is missing.
set -euo pipefail
pkgs=(buildah skopeo umoci docker-registry uidmap debootstrap busybox-static apache2-utils util-linux git jq xz-utils bzip2 zstd time attr libcap2-bin openssl rsync podman runc catatonit slirp4netns qemu-user-static proot tinyproxy)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "setup-system: missing packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "setup-system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The package starts a registry service on :5000 where an init system exists; tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now docker-registry tinyproxy >/dev/null 2>&1 || true; fi
