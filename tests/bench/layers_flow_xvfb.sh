#!/bin/bash
# Use the layered canvas under Xvfb as a user would: generate three versions, add each
# to the canvas (Ctrl+Shift+A), drag two layers with the mouse, change a blend mode and an opacity in
# the layers panel (blend mode, opacity), and take a screenshot.
#
#   tests/bench/layers_flow_xvfb.sh [MODEL] [OUT_FILE]
#
# Mouse positions assume the window's default layout (1280x820 at the top left of a
# 1440x900 screen, fresh settings). Needs Xvfb, xdotool and ImageMagick's `import`.
set -u
MODEL=${1:-bundled}
OUT=${2:-/tmp/noise-studio-xvfb/shots/layers.png}
# shellcheck source=tests/bench/xvfb_session.sh
source "$(dirname "$0")/xvfb_session.sh"
mkdir -p "$(dirname "$OUT")"
PROMPT_BOX="150 135"; CANVAS_X=630; CANVAS_Y=370; LAYER_X=1037; BLEND="1137 100"
OPACITY_HANDLE="1225 76"
row_y() { echo $((138 + 41 * $1)); }  # row 0 is the top layer

nice -n 10 "$PY" main.py --model "$MODEL" >"$WORK/layers-run.log" 2>&1 &
APP=$!
WINDOW=$(xdotool search --sync --name "Noise Studio" | head -1)
sleep 4
xdotool windowfocus --sync "$WINDOW"
n=0
for PROMPT in "a green tree in the forest at noon" "a yellow house in the desert at noon" \
  "a red balloon over the beach at sunset"; do
  n=$((n + 1))
  xdotool mousemove $PROMPT_BOX click 1 key ctrl+a
  xdotool type --delay 15 "$PROMPT"
  xdotool key ctrl+Return
  for _ in $(seq 1 300); do sleep 1; [ "$(versions)" -ge $n ] && break; done
  sleep 3
  xdotool key ctrl+shift+a
  sleep 1
done
drag() {  # drag from the canvas centre by (dx, dy) in small moves: one undo step
  xdotool mousemove $CANVAS_X $CANVAS_Y mousedown 1
  for i in 1 2 3 4 5 6 7 8; do
    xdotool mousemove $((CANVAS_X + $1 * i / 8)) $((CANVAS_Y + $2 * i / 8))
    sleep 0.1
  done
  xdotool mouseup 1
  sleep 1
}
drag 170 130                                         # the top layer: right and down
xdotool mousemove $LAYER_X "$(row_y 1)" click 1; sleep 1
drag -150 -90                                        # the middle layer: left and up
xdotool mousemove $BLEND click 1; sleep 1
xdotool type "Multiply"; xdotool key Return; sleep 1
xdotool mousemove $LAYER_X "$(row_y 0)" click 1; sleep 1
# the top layer at 60 % by dragging the opacity slider's handle (one undo step)
xdotool mousemove $OPACITY_HANDLE mousedown 1
for x in 1210 1190 1170 1150 1144; do xdotool mousemove "$x" 76; sleep 0.1; done
xdotool mouseup 1; sleep 1
xdotool mousemove 1400 880  # the pointer out of the picture
sleep 1
import -window root -crop 1280x820+0+0 "$OUT"
echo "saved $OUT"
kill "$APP"
[ -n "$XVFB" ] && kill "$XVFB"
