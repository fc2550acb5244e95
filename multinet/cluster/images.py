"""Locate (and if needed build) the images the nodes run.

`hack/images/build` is the one place that knows how they are made and where
they are cached; this module only asks it, or takes a directory the user names.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ARCHIVES = ("pause.tar", "agnhost.tar")  # docker-archive tarballs, imported into every node
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "images" / "build"


class ImagesError(RuntimeError):
    pass


def find_image_dir(build: bool) -> Path:
    """The directory holding ARCHIVES ($MULTINET_IMAGES, else built by hack/images/build)."""
    given = os.environ.get("MULTINET_IMAGES")
    if given:
        image_dir = Path(given)
    elif BUILD_SCRIPT.exists():
        args = [str(BUILD_SCRIPT)] + ([] if build else ["--print"])
        out = subprocess.run(args, stdout=subprocess.PIPE, text=True)  # progress goes to stderr
        if out.returncode != 0:
            raise ImagesError(f"building the node images failed: {BUILD_SCRIPT} exited {out.returncode}")
        image_dir = Path(out.stdout.strip().splitlines()[-1])
    else:
        raise ImagesError("no node images: set MULTINET_IMAGES to a directory with " + ", ".join(ARCHIVES))
    missing = [a for a in ARCHIVES if not (image_dir / a).is_file()]
    if missing:
        raise ImagesError(f"missing {', '.join(missing)} in {image_dir}: run hack/images/build")
    return image_dir
