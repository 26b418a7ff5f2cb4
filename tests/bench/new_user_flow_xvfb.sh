#!/bin/bash
# The whole new-user flow in a real window under Xvfb with a window manager (openbox),
# driven by xdotool as a user would: type a prompt, Ctrl+Enter, click a filmstrip thumbnail
# and scrub with the keyboard, Ctrl+B, type a changed prompt, generate the branch, compare
# the two versions and scrub the comparison, copy the picture, export an image and read
# its recipe back. A screenshot after each stage goes to SHOTS; look at them.
#
#   tests/bench/new_user_flow_xvfb.sh [MODEL] [SHOTS_DIR]
#
# Positions are relative to the window (fresh settings, default 1280x820 layout). Needs
# Xvfb, openbox, xdotool and ImageMagick's `import` (xclip, if present, checks the copy).
set -u
MODEL=${1:-bundled}
SHOTS=${2:-/tmp/noise-studio-xvfb/shots/new-user}
# shellcheck source=tests/bench/xvfb_session.sh
source "$(dirname "$0")/xvfb_session.sh"
mkdir -p "$SHOTS"
openbox >/dev/null 2>&1 &
WM=$!
sleep 1
shot() { sleep 1; import -window root "$SHOTS/$1.png"; echo "saved $SHOTS/$1.png"; }
at() { xdotool mousemove --window "$WINDOW" "$1" "$2"; }
wait_versions() { for _ in $(seq 1 300); do sleep 1; [ "$(versions)" -ge "$1" ] && break; done; sleep 2; }

"$PY" main.py --model "$MODEL" >"$WORK/new-user-run.log" 2>&1 &
APP=$!
WINDOW=$(xdotool search --sync --onlyvisible --name "Noise Studio" | head -1)
sleep 4
xdotool windowactivate --sync "$WINDOW"

at 150 110; xdotool click 1
xdotool type --delay 15 "a red car on a mountain road at sunset"
xdotool key ctrl+Return
wait_versions 1
shot 1-generated

at 440 736; xdotool click 1          # a thumbnail of the filmstrip, then the keyboard
xdotool key Left Left Left
shot 2-scrubbed-with-keys

xdotool key ctrl+b                   # branch from the step on view
at 150 110; xdotool click 1; xdotool key ctrl+a
xdotool type --delay 15 "a blue car on a mountain road at night"
xdotool key ctrl+Return
wait_versions 2
shot 3-branched

at 1094 138; xdotool click 1         # v1 in the Versions panel, then v2 with Ctrl
at 1094 176; xdotool keydown ctrl click 1 keyup ctrl
at 1083 526; xdotool click 1         # Compare
sleep 1
at 620 370; xdotool click 1          # the picture area, then scrub both panes together
xdotool key Home Right Right Right Right Right Right End Left Left
shot 4-compared-at-step-18

xdotool key space                    # A/B: flip to the other version
shot 5-ab-flipped

xdotool key ctrl+c                   # copy the picture on view
CLIP=$(xclip -selection clipboard -t TARGETS -o 2>/dev/null | grep -c image/png)
echo "clipboard holds an image: ${CLIP:-unknown (no xclip)}"

xdotool key ctrl+shift+e             # export an image with its recipe
shot 6-export-dialog
xdotool key Return                   # the options as offered, then the file dialog
sleep 2
shot 7-export-file-dialog
EXPORTED="$WORK/exports/flow.png"
rm -rf "$WORK/exports"; mkdir -p "$WORK/exports"
xdotool key ctrl+a
xdotool type --delay 15 "$EXPORTED"
xdotool key Return
sleep 3
shot 8-exported
if [ -s "$EXPORTED" ]; then
  echo "exported $EXPORTED ($(stat -c %s "$EXPORTED") bytes)"
  "$PY" main.py info "$EXPORTED" | head -3
else
  echo "export failed: no $EXPORTED"
fi

kill "$APP" 2>/dev/null
sleep 2
kill "$WM" 2>/dev/null
[ -n "$XVFB" ] && kill "$XVFB" 2>/dev/null
exit 0
