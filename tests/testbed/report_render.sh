#!/usr/bin/env bash
# The bench report as a browser draws it: the gtest renders the fixture results.json
# (tests/fixtures/bench/results_small.json) to HTML, headless Chromium screenshots the page
# offline, and the PNG (decoded with python3's zlib and struct) must show the plots: every series
# colour the SVGs use covers at least MIN_PER_PLOT pixels per plot it is drawn in, the page is
# not blank and ends inside the screenshot. Skips (exit 77) only when Chromium is not installed.
#
# usage: report_render.sh path/to/rlhf_tests [report.html [min-pixels-per-plot [page-height]]]
#   with a report (tests/cli/bench.sh passes the mini bench's own) that page is checked instead
#   of the fixture's; a bench's barely moving runs draw small markers, hence the threshold.
set -euo pipefail
TESTS="$1"
HTML="${2:-}"
export MIN_PER_PLOT="${3:-100}"
HEIGHT="${4:-6000}"
fail() { echo "FAIL: $*"; exit 1; }

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [[ -z "$CHROMIUM" ]]; then
  echo "SKIP: chromium not found (Debian: apt-get install -y chromium)"
  exit 77
fi
command -v python3 >/dev/null || fail "python3 is needed to read the screenshot"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ -n "$HTML" ]]; then
  cp "$HTML" "$tmp/report.html"
else
  RLHF_REPORT_OUT="$tmp/report.html" "$TESTS" --gtest_filter=Report.FixtureHasEveryPlot >"$tmp/gtest.log" 2>&1 ||
    { cat "$tmp/gtest.log"; fail "the gtest that renders the report failed"; }
fi
[[ -s "$tmp/report.html" ]] || fail "no report written to RLHF_REPORT_OUT"

# Offline: a file:// page with nothing external, and Chromium's own background traffic off.
timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --force-color-profile=srgb --force-device-scale-factor=1 --no-first-run --disable-extensions \
  --disable-sync --disable-background-networking --disable-component-update \
  --user-data-dir="$tmp/profile" --window-size=1200,$HEIGHT --screenshot="$tmp/shot.png" \
  "file://$tmp/report.html" >"$tmp/chromium.log" 2>&1 ||
  { tail -20 "$tmp/chromium.log"; fail "chromium did not take the screenshot"; }
[[ -s "$tmp/shot.png" ]] || { tail -20 "$tmp/chromium.log"; fail "chromium wrote no screenshot"; }

python3 - "$tmp/report.html" "$tmp/shot.png" <<'PY'
import os, re, struct, sys, zlib
from collections import Counter

MIN_PER_PLOT = int(os.environ.get("MIN_PER_PLOT", "100"))   # pixels of a series colour per plot that draws it
TOLERANCE = 2        # per channel: interiors of lines and markers are drawn in the exact colour

html = open(sys.argv[1], encoding="utf-8").read()

def read_png(path):
    """Width, height, bytes per pixel and the unfiltered rows of an 8-bit RGB(A) PNG."""
    d = open(path, "rb").read()
    assert d[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    while pos < len(d):
        n, = struct.unpack(">I", d[pos:pos + 4])
        kind, body = d[pos + 4:pos + 8], d[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    assert depth == 8 and ctype in (2, 6) and interlace == 0, \
        f"unsupported PNG: depth {depth}, colour type {ctype}, interlace {interlace}"
    bpp = 3 if ctype == 2 else 4
    stride = w * bpp
    raw = zlib.decompress(b"".join(idat))
    prev, zero, rows = bytes(stride), bytes(stride), []
    for y in range(h):
        f = raw[y * (stride + 1)]
        cur = raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)]
        if f == 0:
            out = cur
        elif f == 2 and cur == zero:  # a row like the one above (most of a page)
            out = prev
        elif f == 2:
            out = bytes((a + b) & 255 for a, b in zip(cur, prev))
        else:
            out = bytearray(cur)
            for i in range(stride):
                a = out[i - bpp] if i >= bpp else 0
                if f == 1:
                    out[i] = (out[i] + a) & 255
                elif f == 3:
                    out[i] = (out[i] + ((a + prev[i]) >> 1)) & 255
                else:  # Paeth
                    b = prev[i]
                    c = prev[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    out[i] = (out[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            out = bytes(out)
        rows.append(out)
        prev = out
    return w, h, bpp, rows

w, h, bpp, rows = read_png(sys.argv[2])
white_row = b"\xff" * (w * bpp)
pixels, last = Counter(), -1
for y, row in enumerate(rows):
    if row == white_row:
        pixels[b"\xff\xff\xff"] += w
        continue
    last = y
    pixels.update(row[i:i + 3] for i in range(0, len(row), bpp))

errors = []
inked = w * h - pixels[b"\xff\xff\xff"]
print(f"screenshot {w}x{h}: {inked} non-white pixels ({100.0 * inked / (w * h):.1f}%), "
      f"{len(pixels)} distinct colours, page ends at row {last}")
if inked < 0.01 * w * h or len(pixels) < 50:
    errors.append("the page looks blank")
if last >= h - 8:
    errors.append("the page runs past the screenshot; raise --window-size")

# The series colours, and in how many plots each is drawn.
svgs = re.findall(r"<svg\b.*?</svg>", html, re.S)
plots_with = Counter()
names = {}
for svg in svgs:
    for colour in set(re.findall(r'data-colour="#([0-9a-fA-F]{6})"', svg)):
        plots_with[colour.lower()] += 1
    for name, colour in re.findall(r'data-series="([^"]*)" data-colour="#([0-9a-fA-F]{6})"', svg):
        if name:
            names.setdefault(colour.lower(), set()).add(name)
print(f"{len(svgs)} plots, {len(plots_with)} series colours")
if not svgs:
    errors.append("no <svg> plots in the report")

def near(rgb, target):
    return all(abs(a - b) <= TOLERANCE for a, b in zip(rgb, target))

for colour, n_plots in sorted(plots_with.items()):
    target = bytes.fromhex(colour)
    count = sum(n for rgb, n in pixels.items() if near(rgb, target))
    need = MIN_PER_PLOT * n_plots
    label = ", ".join(sorted(names.get(colour, [])))[:60]
    ok = count >= need
    print(f"  #{colour} {count:6d} px (need {need:5d}, in {n_plots} plots)  {'ok' if ok else 'TOO FEW'}  {label}")
    if not ok:
        errors.append(f"series colour #{colour} ({label}) covers {count} px < {need}")

if errors:
    print("FAIL: " + "; ".join(errors))
    sys.exit(1)
print("OK: the report's plots are drawn")
PY
