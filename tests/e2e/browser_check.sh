#!/usr/bin/env bash
# Load the live dashboard in headless Chromium and check what it rendered.
#
#   tests/e2e/browser_check.sh URL OUT.png [MIN_RANKS]
#
# Opens URL (the `seqpar monitor` page) at 1280x900, lets it run in real time
# until it has refreshed twice (first load, then the refresh triggered by the
# event stream's "hello") or BROWSER_WAIT seconds (default 15) have passed,
# then saves the DOM and a screenshot to OUT.png, and checks on that DOM that
#   - canvas #chart-loss, #chart-tps, #chart-gradnorm, #chart-valid each have
#     data-points >= 1,
#   - #chart-tps draws a moving average beside its points (data-series),
#   - table #ranks has at least MIN_RANKS (default 2) tr.rank-row rows.
# One line per check ("ok   ..." / "FAIL ..."); exit 0 only if all pass,
# 1 if a check fails or the browser could not load the page, 2 on bad usage.
# Environment: CHROMIUM (default chromium), BROWSER_WAIT (seconds, default 15),
# BROWSER_DOM (save the rendered DOM to this file); BROWSER_WIDTHS (window
# widths, default "1280"): at each the four charts must fill their grid
# (whole rows of equal cards), with a screenshot each (OUT-WIDTH.png when
# there are several; BROWSER_HEIGHT: their height, default 900); BROWSER_STRAGGLER=R: the timeline marks rank R, and no
# other, a straggler (div.tl-row and tr.rank-row data-straggler), and
# #chart-timeline has points.
#
# Why not `chromium --dump-dom --virtual-time-budget`: virtual time waits for
# pending network requests, and the page's EventSource('/events') never ends,
# so that mode hangs. Instead a small Python driver talks to Chromium over the
# DevTools protocol on a pipe (--remote-debugging-pipe: no port, no websocket).
# Chromium runs under `timeout 60` with a throwaway profile directory.
set -u
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 URL OUT.png [MIN_RANKS]" >&2
    exit 2
fi
url=$1 out=$2 min_ranks=${3:-2}
case $min_ranks in '' | *[!0-9]*)
    echo "$0: MIN_RANKS must be a number, not '$min_ranks'" >&2
    exit 2
    ;;
esac
CHROMIUM=${CHROMIUM:-chromium}
if ! command -v "$CHROMIUM" >/dev/null 2>&1; then
    echo "FAIL $CHROMIUM not found (apt-get install chromium)"
    exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/seqpar-browser.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- drive the browser: DOM to $work/dom.html, screenshot to $out
CHROMIUM=$CHROMIUM BROWSER_WAIT=${BROWSER_WAIT:-15} BROWSER_WIDTHS=${BROWSER_WIDTHS:-1280} \
    timeout 90 python3 - "$url" "$work/dom.html" "$out" \
    "$work/profile" >"$work/driver.out" 2>"$work/driver.err" <<'PY'
import base64, json, os, select, signal, subprocess, sys, time

url, dom_path, png_path, profile = sys.argv[1:5]
wait = float(os.environ["BROWSER_WAIT"])

# Chromium reads DevTools commands on fd 3 and writes answers on fd 4,
# each message a JSON text ended by a NUL byte.
cmd_r, cmd_w = os.pipe()
res_r, res_w = os.pipe()
args = ["timeout", "60", os.environ["CHROMIUM"], "--headless=new", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
        "--hide-scrollbars", "--window-size=1280,900", "--remote-debugging-pipe",
        "--user-data-dir=" + profile, "about:blank"]
proc = subprocess.Popen(["sh", "-c", 'exec 3<&%d 4>&%d; exec "$@"' % (cmd_r, res_w), "sh"] + args,
                        pass_fds=(cmd_r, res_w), stdin=subprocess.DEVNULL, start_new_session=True,
                        stdout=subprocess.DEVNULL, stderr=open(profile + ".log", "wb"))
os.close(cmd_r)
os.close(res_w)
buf = b""
next_id = 0
notes = []   # JavaScript exceptions and console errors, reported at the end


def stop_browser():
    """Ask Chromium to quit, then signal its process group (ours: start_new_session)."""
    global stopping
    if stopping:
        return
    stopping = True
    try:
        os.write(cmd_w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
    except OSError:
        pass
    for sig, grace in ((None, 5), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        if sig is not None:
            try:
                os.killpg(proc.pid, sig)
            except OSError:
                pass
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            pass


stopping = False


def fail(msg):
    print("FAIL " + msg)
    stop_browser()
    sys.exit(1)


def read_message(deadline):
    global buf
    while b"\0" not in buf:
        left = deadline - time.time()
        if left <= 0 or not select.select([res_r], [], [], left)[0]:
            fail("no answer from Chromium (timed out)")
        chunk = os.read(res_r, 1 << 16)
        if not chunk:
            fail("Chromium exited (status %s)" % proc.poll())
        buf += chunk
    msg, buf = buf.split(b"\0", 1)
    return json.loads(msg)


def call(method, params=None, session=None, timeout=20):
    global next_id
    next_id += 1
    msg = {"id": next_id, "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    os.write(cmd_w, json.dumps(msg).encode() + b"\0")
    deadline = time.time() + timeout
    while True:
        m = read_message(deadline)
        if m.get("id") == next_id:
            if "error" in m:
                fail("%s: %s" % (method, m["error"].get("message")))
            return m.get("result", {})
        if m.get("method") == "Runtime.exceptionThrown":
            d = m["params"]["exceptionDetails"]
            notes.append("js exception: " + (d.get("exception", {}).get("description") or d.get("text", "")))
        elif m.get("method") == "Runtime.consoleAPICalled" and m["params"].get("type") == "error":
            notes.append("console error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                      for a in m["params"].get("args", [])))


def evaluate(expr, session):
    r = call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)
    return r.get("result", {}).get("value")


target = call("Target.createTarget", {"url": "about:blank"}, timeout=30)["targetId"]
s = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
call("Emulation.setDeviceMetricsOverride",
     {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, s)
call("Runtime.enable", {}, s)
call("Page.enable", {}, s)
nav = call("Page.navigate", {"url": url}, s, timeout=30)
if nav.get("errorText"):
    fail("cannot load %s: %s" % (url, nav["errorText"]))

# Let the page run: until two refreshes completed, or `wait` seconds.
start = time.time()
while time.time() - start < wait:
    n = evaluate("Number((document.body && document.body.dataset.refreshes) || 0)", s)
    if isinstance(n, (int, float)) and n >= 2:
        time.sleep(0.5)   # let the last paint settle
        break
    time.sleep(0.25)
took = time.time() - start

html = evaluate("'<!DOCTYPE html>\\n' + document.documentElement.outerHTML", s) or ""
with open(dom_path, "w", encoding="utf-8") as f:
    f.write(html)
# At each width: the chart cards' boxes (whole rows of equal cards fill the
# grid), and a screenshot.
widths = [int(w) for w in os.environ["BROWSER_WIDTHS"].split()]
LAYOUT = """JSON.stringify([...document.querySelectorAll('.grid.charts > .card')].map((e) => {
  const r = e.getBoundingClientRect(); return [Math.round(r.left), Math.round(r.top), Math.round(r.width)]; }))"""
for w in widths:
    call("Emulation.setDeviceMetricsOverride",
         {"width": w, "height": int(os.environ.get("BROWSER_HEIGHT", "900")), "deviceScaleFactor": 1,
          "mobile": False}, s)
    time.sleep(0.8)  # the resize redraws the charts
    boxes = json.loads(evaluate(LAYOUT, s) or "[]")
    cols, rows = len({b[0] for b in boxes}), len({b[1] for b in boxes})
    full = len(boxes) == 4 and cols * rows == 4 and len({b[2] for b in boxes}) == 1
    print("%s charts at %d px: %d column%s x %d row%s, card widths %s" % (
        "ok  " if full else "FAIL", w, cols, "" if cols == 1 else "s", rows, "" if rows == 1 else "s",
        sorted({b[2] for b in boxes})))
    shot = call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False}, s)
    name = png_path if len(widths) == 1 else (png_path[:-4] if png_path.endswith(".png") else png_path) + "-%d.png" % w
    with open(name, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    print("info screenshot at %d px: %s" % (w, name))
live = evaluate("(document.getElementById('live') || {dataset: {}}).dataset.state || 'none'", s)
print("info page ran %.1f s, live indicator: %s" % (took, live))
for n in notes[:10]:
    print("info " + n[:300])
stop_browser()
PY
rc=$?
cat "$work/driver.out"
layout_fails=$(grep -c '^FAIL' "$work/driver.out")
if [ -s "$work/driver.err" ]; then sed 's/^/driver: /' "$work/driver.err" | head -n 20; fi
if [ "$rc" != 0 ] || [ ! -s "$work/dom.html" ]; then
    [ "$rc" = 124 ] && echo "FAIL the browser driver timed out"
    echo "FAIL could not render $url (driver exit $rc)"
    exit 1
fi

# --- checks on the DOM (BROWSER_DOM=FILE keeps a copy, for debugging)
[ -n "${BROWSER_DOM:-}" ] && cp "$work/dom.html" "$BROWSER_DOM"
fails=$layout_fails
ok() { echo "ok   $*"; }
bad() {
    fails=$((fails + 1))
    echo "FAIL $*"
}
dom=$work/dom.html
for chart in chart-loss chart-valid chart-tps chart-gradnorm; do
    n=$(grep -Eo "<canvas [^>]*id=\"$chart\"[^>]*>" "$dom" | grep -Eo 'data-points="[0-9]+"' | grep -Eo '[0-9]+' | head -n 1)
    if [ -z "$n" ]; then
        bad "$chart: no such canvas with a data-points attribute"
    elif [ "$n" -ge 1 ]; then
        ok "$chart has $n points"
    else
        bad "$chart has $n points (want >= 1)"
    fi
done
if grep -Eo '<canvas [^>]*id="chart-tps"[^>]*>' "$dom" | grep -q 'data-series="tokens/s,moving average'; then
    ok "chart-tps draws a moving average beside the raw points"
else
    bad "chart-tps has no moving average: $(grep -Eo '<canvas [^>]*id="chart-tps"[^>]*>' "$dom")"
fi
if grep -q '<table [^>]*id="ranks"' "$dom"; then
    rows=$(grep -Eo '<tr [^>]*class="([^"]* )?rank-row( [^"]*)?"' "$dom" | wc -l)
    if [ "$rows" -ge "$min_ranks" ]; then
        ok "#ranks has $rows rank rows"
    else
        bad "#ranks has $rows rank rows (want >= $min_ranks)"
    fi
else
    bad "no table#ranks in the page"
fi
if [ -n "${BROWSER_STRAGGLER:-}" ]; then
    marked=$(grep -Eo '<div [^>]*class="tl-row"[^>]*>' "$dom" | grep 'data-straggler="1"' |
        grep -Eo 'data-rank="[0-9]+"' | grep -Eo '[0-9]+' | tr '\n' ' ')
    rows=$(grep -Eo '<div [^>]*class="tl-row"[^>]*>' "$dom" | wc -l)
    if [ "$marked" = "$BROWSER_STRAGGLER " ]; then
        ok "the timeline marks rank $BROWSER_STRAGGLER a straggler, no other (of $rows ranks)"
    else
        bad "the timeline marks '${marked}' stragglers (want rank $BROWSER_STRAGGLER; $rows rows)"
    fi
    if grep -Eo '<tr [^>]*class="rank-row"[^>]*>' "$dom" | grep "data-rank=\"$BROWSER_STRAGGLER\"" |
        grep -q 'data-straggler="1"'; then
        ok "the ranks table marks rank $BROWSER_STRAGGLER a straggler"
    else
        bad "the ranks table does not mark rank $BROWSER_STRAGGLER a straggler"
    fi
    n=$(grep -Eo '<canvas [^>]*id="chart-timeline"[^>]*>' "$dom" | grep -Eo 'data-points="[0-9]+"' | grep -Eo '[0-9]+')
    if [ "${n:-0}" -ge 1 ]; then ok "chart-timeline has $n points"; else bad "chart-timeline has ${n:-no} points"; fi
fi
for w in ${BROWSER_WIDTHS:-1280}; do
    f=$out
    [ "$(echo ${BROWSER_WIDTHS:-1280} | wc -w)" -gt 1 ] && f=${out%.png}-$w.png
    if [ -s "$f" ]; then
        ok "screenshot $f ($(wc -c <"$f") bytes)"
    else
        bad "no screenshot written to $f"
    fi
done
[ "$fails" = 0 ]
