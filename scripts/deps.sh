#!/usr/bin/env bash
# Installs the Debian 12 packages tonghop needs to build, test and run.
# Skips apt when everything is present already (fast reruns).
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libzmq3-dev libmsgpack-dev liblmdb-dev lmdb-utils libsodium-dev
      libunistring-dev libjansson-dev libcmocka-dev libxlsxwriter-dev libzip-dev libexpat1-dev
      python3-openpyxl unzip valgrind gettext)
# the packaging stage (scripts/pkg-test.sh): building the Debian packages (debhelper,
# dpkg-dev), checking them (lintian), installing and running them (systemd for
# sysusers/tmpfiles and systemd-analyze, iproute2 for ss, curl and
# prometheus-node-exporter to scrape the collector's metrics as node_exporter would),
# validating docker/compose.yaml with Debian's docker-compose
pkgs+=(debhelper dpkg-dev lintian systemd iproute2 curl prometheus-node-exporter docker-compose)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
