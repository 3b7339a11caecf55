"""Copy the front-end libraries the web UI uses from node_modules/ into the package's static files.

The vendored files are committed, so the web app needs neither node nor a CDN at run time. Run
after changing the versions in package.json (``npm install`` first)::

    python scripts/vendor_js.py          # copy
    python scripts/vendor_js.py --check  # exit 1 if the committed copies differ from node_modules
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
VENDOR = ROOT / "marketplace" / "web" / "static" / "vendor"

#: npm package -> (file in the package, name in static/vendor/)
FILES: dict[str, list[tuple[str, str]]] = {
    "htmx.org": [("dist/htmx.min.js", "htmx.min.js")],
    "chart.js": [("dist/chart.umd.min.js", "chart.umd.min.js")],
    "ethers": [("dist/ethers.umd.min.js", "ethers.umd.min.js")],
    "axe-core": [("axe.min.js", "axe.min.js")],
}
#: Vendored for the browser tests only (they inject it into each page to audit it): no page loads it.
TEST_ONLY = frozenset({"axe-core"})
LICENSES = ("LICENSE", "LICENSE.md", "LICENSE.txt")


def _license(package_dir: Path) -> Path | None:
    return next((package_dir / name for name in LICENSES if (package_dir / name).is_file()), None)


def plan() -> list[tuple[Path, Path]]:
    """(source, destination) pairs, licenses included; raises if a package is not installed."""
    pairs: list[tuple[Path, Path]] = []
    for package, files in FILES.items():
        package_dir = NODE_MODULES / package
        if not package_dir.is_dir():
            raise SystemExit(f"{package} is not in node_modules/: run `npm install` first")
        for source, dest in files:
            pairs.append((package_dir / source, VENDOR / dest))
        lic = _license(package_dir)
        if lic is not None:
            pairs.append((lic, VENDOR / f"{package}.LICENSE"))
    return pairs


#: Swagger UI for the interactive API documentation at ``/api/docs`` (npm package, files, names in static/vendor/).
SWAGGER_UI = "swagger-ui-dist"
SWAGGER_UI_FILES = [
    ("swagger-ui-bundle.js", "swagger-ui-bundle.js"),
    ("swagger-ui.css", "swagger-ui.css"),
    ("favicon-32x32.png", "swagger-ui-favicon-32x32.png"),
]


def swagger_ui_plan() -> list[tuple[Path, Path]]:
    """(source, destination) pairs of Swagger UI and its license; raises if the package is not installed."""
    package_dir = NODE_MODULES / SWAGGER_UI
    if not package_dir.is_dir():
        raise SystemExit(f"{SWAGGER_UI} is not in node_modules/: run `npm install` first")
    pairs = [(package_dir / source, VENDOR / dest) for source, dest in SWAGGER_UI_FILES]
    return [*pairs, (package_dir / "LICENSE", VENDOR / f"{SWAGGER_UI}.LICENSE")]


def versions() -> dict[str, str]:
    packages = [*FILES, SWAGGER_UI]
    return {p: json.loads((NODE_MODULES / p / "package.json").read_text())["version"] for p in packages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, do not copy")
    args = parser.parse_args(argv)
    pairs = plan() + swagger_ui_plan()
    manifest = json.dumps(versions(), indent=2, sort_keys=True) + "\n"
    if args.check:
        stale = [str(d.relative_to(ROOT)) for s, d in pairs if not d.is_file() or d.read_bytes() != s.read_bytes()]
        manifest_path = VENDOR / "versions.json"
        if not manifest_path.is_file() or manifest_path.read_text() != manifest:
            stale.append(str(manifest_path.relative_to(ROOT)))
        if stale:
            print("out of date: " + ", ".join(stale) + " (run python scripts/vendor_js.py)", file=sys.stderr)
            return 1
        print("vendored JS up to date")
        return 0
    VENDOR.mkdir(parents=True, exist_ok=True)
    for source, dest in pairs:
        shutil.copyfile(source, dest)
        print(f"{source.relative_to(ROOT)} -> {dest.relative_to(ROOT)}")
    (VENDOR / "versions.json").write_text(manifest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
