#!/usr/bin/env bash
# Everything a fresh Debian/Ubuntu machine needs for imse-study: the system libraries that napari's Qt
# and the headless viewer tests use (only those missing are installed), then the Python packages.
# Safe to run again: it installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglx-mesa0 libxkbcommon-x11-0 libxcb-cursor0
  libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0
  libxcb-xfixes0 libxcb-xinerama0 libxcb-xinput0 libxcb-xkb1 libfontconfig1 libdbus-1-3)

missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
elif ! command -v dpkg >/dev/null 2>&1; then
  echo "setup.sh: not a Debian system; install Xvfb, Mesa OpenGL and the Qt xcb libraries yourself" >&2
fi

python -m pip install -r requirements.txt
