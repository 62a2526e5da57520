#!/usr/bin/env python3
"""Take the README's screenshot of the web page: serve a library on a free loopback port, open one
view in Debian's chromium (headless) and save a PNG reduced to a small palette.

    python scripts/screenshot_page.py --library mmrec-library --view "#/user/alice" --out docs/img/serve.png

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
    parser.add_argument("--view", default="#/user/alice", help="the page's hash route to show")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "serve.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=860)
    parser.add_argument("--colors", type=int, default=128, help="palette size of the saved PNG")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)

    from PIL import Image
    from playwright.sync_api import sync_playwright

    base, server, thread = serve(args.library)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.set_default_timeout(120_000)
            page.goto(f"{base}/{args.view}")
            page.wait_for_selector("main .card")
            page.wait_for_function("() => [...document.images].every(i => i.complete)")
            page.wait_for_timeout(300)
            png = page.screenshot()
            browser.close()
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=15)

    image = Image.open(io.BytesIO(png)).convert("RGB")
    small = image.quantize(colors=args.colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    small.save(args.out, optimize=True)
    print(f"{args.out}: {image.width}x{image.height}, {args.out.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
