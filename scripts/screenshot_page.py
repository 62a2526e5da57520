#!/usr/bin/env python3
"""Take the README's screenshot of the web page: serve a library on a free loopback port, open
views in Debian's chromium (headless), stack them, and save a PNG reduced to a small palette.

    python scripts/screenshot_page.py --library mmrec-library \
        --view "#/search?q=一只狗@372" --view "#/user/alice@860" --out docs/img/serve.png

A view is the page's hash route, optionally with ``@HEIGHT``: keep only its top HEIGHT pixels.

Only reads the library: served items are not recorded and nothing is clicked that posts.
"""

from __future__ import annotations

import argparse
import io
import socket
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def serve(library: Path) -> tuple[str, object, threading.Thread]:
    import uvicorn

    from mmrec import Library
    from mmrec.server import create_app

    lib = Library(library, create=False)
    lib.warm_up()
    app = create_app(lib, record_served=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=ROOT / "mmrec-library")
    parser.add_argument(
        "--view", action="append", help="hash route to show, optionally @HEIGHT (repeat to stack views)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "serve.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=860)
    parser.add_argument("--colors", type=int, default=256, help="palette size of the saved PNG")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)

    from PIL import Image
    from playwright.sync_api import sync_playwright

    views = args.view or ["#/user/alice"]
    base, server, thread = serve(args.library)
    shots: list[Image.Image] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.set_default_timeout(120_000)
            for view in views:
                route, _, crop = view.partition("@")
                page.goto(f"{base}/{route}")
                page.wait_for_selector("main .card")
                page.wait_for_function("() => [...document.images].every(i => i.complete)")
                page.wait_for_timeout(300)
                shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
                # Stacked views share the first one's header: the others start below theirs.
                top = page.evaluate("() => document.querySelector('header').offsetHeight") if shots else 0
                bottom = min(shot.height, int(crop)) if crop else shot.height
                shots.append(shot.crop((0, top, shot.width, bottom)))
            browser.close()
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=15)

    gap = 6
    image = Image.new("RGB", (args.width, sum(s.height for s in shots) + gap * (len(shots) - 1)), "#c9ced6")
    y = 0
    for shot in shots:
        image.paste(shot, (0, y))
        y += shot.height + gap
    small = image.quantize(colors=args.colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    small.save(args.out, optimize=True)
    print(f"{args.out}: {image.width}x{image.height}, {args.out.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
