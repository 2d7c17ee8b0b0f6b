"""Screenshots of a built book, taken offline with headless Chromium.

Builds nothing: give it a built book (``jupyter-book build book/`` writes ``book/_build/html``) and it
writes PNGs of the intro, the claims page, the T1-T2 Table 2 page and the T1-T2 spatial-error page
into this folder (or ``--out``)::

    python docs/screenshots/take_book_screenshots.py [--html book/_build/html] [--out docs/screenshots]

Chromium is the Debian package ``chromium`` (``apt-get install -y chromium``); ``--chromium`` names
another binary. Pages are opened as ``file://`` URLs with no network: the book vendors MathJax and the
widget scripts, so nothing is fetched (run it under ``unshare -n`` to be sure).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# (page of the built book, PNG name, window height in px: long enough to show the page's opening)
PAGES = (
    ("intro.html", "book_intro.png", 1800),
    ("claims.html", "book_claims.png", 2600),
    ("experiments/02_register_t1t2.html", "book_02_register_t1t2.png", 2600),
    ("experiments/05_spatial_error_t1t2.html", "book_05_spatial_error_t1t2.png", 2600),
)
WIDTH = 1400
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium(given: str | None = None) -> str:
    """The Chromium binary: ``given``, else the first of :data:`CANDIDATES` on the PATH."""
    for name in ([given] if given else CANDIDATES):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("error: no Chromium found; install it (apt-get install -y chromium) or pass --chromium PATH")


def command(chromium: str, page: Path, png: Path, height: int, width: int = WIDTH) -> list[str]:
    """The headless Chromium command line that writes ``png`` from ``page``."""
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--disable-extensions", "--virtual-time-budget=5000",
            f"--window-size={width},{height}", f"--screenshot={png}", page.resolve().as_uri()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--html", type=Path, default=REPO / "book" / "_build" / "html", help="the built book")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the PNGs")
    parser.add_argument("--chromium", help="the Chromium binary (default: found on the PATH)")
    args = parser.parse_args(argv)
    missing = [page for page, _, _ in PAGES if not (args.html / page).exists()]
    if missing:
        print(f"error: {args.html} lacks {', '.join(missing)}: build the book first (jupyter-book build book/)",
              file=sys.stderr)
        return 2
    chromium = find_chromium(args.chromium)
    args.out.mkdir(parents=True, exist_ok=True)
    for page, name, height in PAGES:
        png = args.out / name
        result = subprocess.run(command(chromium, args.html / page, png, height), capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0 or not png.exists():
            print(f"error: chromium failed on {page}: {result.stderr.strip()[-500:]}", file=sys.stderr)
            return 1
        print(f"{page} -> {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
