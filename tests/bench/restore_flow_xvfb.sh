#!/bin/bash
# Try the crash-restore flow in a real window under Xvfb, as a user would:
# launch, type a prompt, generate, add the result to the canvas, kill -9 the app,
# relaunch, answer "Restore" in the offer, and take screenshots along the way.
#
#   tests/bench/restore_flow_xvfb.sh [MODEL] [OUT_DIR] [PROMPT]
#
# Needs Xvfb, xdotool and ImageMagick's `import`. Uses display :77 (or
# $NOISE_STUDIO_XVFB_DISPLAY) and a scratch recovery folder and settings under
# /tmp/noise-studio-xvfb (never the user's own).
set -u
MODEL=${1:-bundled}
OUT=${2:-/tmp/noise-studio-xvfb/shots}
PROMPT=${3:-a red car on a mountain road at sunset}
# shellcheck source=tests/bench/xvfb_session.sh
source "$(dirname "$0")/xvfb_session.sh"
mkdir -p "$OUT"
shot() { import -window root -crop 1280x820+0+0 "$OUT/$1"; echo "saved $OUT/$1"; }

nice -n 10 "$PY" main.py --model "$MODEL" >"$WORK/first-run.log" 2>&1 &
APP=$!
WINDOW=$(xdotool search --sync --name "Noise Studio" | head -1)
sleep 4
xdotool windowfocus --sync "$WINDOW"
xdotool type --delay 20 "$PROMPT"
xdotool key ctrl+Return
for _ in $(seq 1 300); do sleep 1; [ "$(versions)" -ge 1 ] && break; done
sleep 3
xdotool key ctrl+shift+a
sleep 2
shot before-crash.png
echo "versions stored before the crash: $(versions)"
kill -9 "$APP"
wait "$APP" 2>/dev/null
echo "killed the app (pid $APP); left in the recovery folder:"; ls "$WORK/recovery"

nice -n 10 "$PY" main.py --model "$MODEL" >"$WORK/second-run.log" 2>&1 &
APP=$!
xdotool search --sync --name "Noise Studio" >/dev/null
sleep 6
shot restore-offer.png
xdotool key Return  # "Restore" is the default button
sleep 6
shot restored.png
xdotool windowfocus --sync "$(xdotool search --name "Noise Studio" | head -1)"
xdotool key ctrl+l  # the restored layer on the canvas
sleep 2
shot restored-canvas.png
kill "$APP"  # SIGTERM: the work stays in the recovery folder for the next launch
[ -n "$XVFB" ] && kill "$XVFB"
