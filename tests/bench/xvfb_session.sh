# Sourced by the *_xvfb.sh flows: a scratch session under Xvfb.
#
# Sets WORK (/tmp/noise-studio-xvfb), ROOT (the repository) and PY (its venv's python),
# cds to ROOT, empties the scratch recovery folder and settings under WORK (never the
# user's own) and points the app at them, uses display :77 (or $NOISE_STUDIO_XVFB_DISPLAY)
# and starts Xvfb there unless a server already answers (its pid in XVFB, else empty).
# `versions` prints how many versions the recovered project holds so far.
WORK=/tmp/noise-studio-xvfb
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY="$ROOT/.venv/bin/python"
cd "$ROOT" || exit 1
rm -rf "$WORK/recovery" "$WORK/config"
mkdir -p "$WORK/recovery" "$WORK/config"
# A display of its own: keystrokes must not reach anyone else's window.
export DISPLAY=${NOISE_STUDIO_XVFB_DISPLAY:-:77}
export NOISE_STUDIO_RECOVERY_DIR="$WORK/recovery" XDG_CONFIG_HOME="$WORK/config"
XVFB=
if ! xdpyinfo >/dev/null 2>&1; then
  Xvfb "$DISPLAY" -screen 0 1440x900x24 -nolisten tcp >/dev/null 2>&1 &
  XVFB=$!
  sleep 2
fi
versions() {
  "$PY" -c "
import glob
from studio.document.store import peek
found = glob.glob('$WORK/recovery/*.studio')
print(peek(found[0]).version_count if found else 0)" 2>/dev/null || echo 0
}
