"""Downloads one pinned source distribution from the package index and checks its SHA-256.

    python scripts/bench/fetch_sdist.py NAME VERSION SHA256 DEST_DIR

`pip download --no-binary` would also build the package's metadata, which for a CMake project
means building its build dependencies from source; the bench only needs the archive. The index
is PyPI's JSON simple API (PEP 691), or PIP_INDEX_URL where that is set.
"""

import hashlib
import json
import os
import pathlib
import sys
import urllib.request


def main():
    name, version, sha256, dest = sys.argv[1:5]
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    req = urllib.request.Request(
        f"{index}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        files = json.load(r)["files"]
    wanted = f"-{version}.tar.gz"
    match = [f for f in files if f["filename"].endswith(wanted)]
    if not match:
        sys.exit(f"{name} {version}: no source archive on {index}")
    f = match[0]
    out = pathlib.Path(dest) / f["filename"]
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    digest = hashlib.sha256()
    with urllib.request.urlopen(f["url"], timeout=600) as r, open(partial, "wb") as w:
        while chunk := r.read(1 << 20):
            digest.update(chunk)
            w.write(chunk)
    if digest.hexdigest() != sha256:
        partial.unlink()
        sys.exit(f"{f['filename']}: SHA-256 {digest.hexdigest()}, expected {sha256}")
    partial.rename(out)
    print(out)


if __name__ == "__main__":
    main()
