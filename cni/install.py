"""Install the plugin binary into a CNI bin dir as a start-time-lean script,
and the network configuration list that makes a runtime call it.

The console script pip makes (`multinet-cni`) starts the interpreter with
`site`, which in a virtualenv costs more than the whole shim (about 30 ms of
45 ms here). The shim needs only the standard library and this package, so
the installed script runs `python -SE` (one shebang argument) and puts the package's directory on
the path itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cni

PLUGIN_NAME = "multinet-cni"
CONFLIST_NAME = "00-multinet.conflist"  # sorts first: a runtime uses the first list it finds
# The list's cniVersion is the version the runtime runs it at. containerd 1.6
# (Debian 12) reads results up to 1.0.0 and refuses a 1.1.0 one, so 1.0.0 is
# the default; `cniVersions` (spec 1.1) lets a newer runtime pick 1.1.0 and
# its STATUS and GC verbs.
CONFLIST_VERSION = "1.0.0"


def plugin_script(python: str = sys.executable) -> str:
    package_root = Path(cni.__file__).resolve().parent.parent
    return (
        f"#!{python} -SE\n"
        "# multinet CNI plugin (installed by `multinet install-cni`); see cni/install.py.\n"
        "import sys\n"
        f"sys.path.insert(0, {str(package_root)!r})\n"
        "from cni.shim import main\n"
        "sys.exit(main())\n"
    )


def install(bin_dir: Path, python: str = sys.executable) -> Path:
    """Write the plugin into `bin_dir` atomically (a runtime may be calling it)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / PLUGIN_NAME
    tmp = bin_dir / f".{PLUGIN_NAME}.tmp"
    tmp.write_text(plugin_script(python))
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    return target


def conflist(socket: Path, version: str = CONFLIST_VERSION) -> dict[str, object]:
    """The multinet network configuration list, talking to the agent at `socket`."""
    return {
        "cniVersion": version, "cniVersions": sorted({version, "1.1.0"}), "name": "multinet",
        "plugins": [{"type": PLUGIN_NAME, "socket": str(socket)}],
    }


def install_conflist(conf_dir: Path, socket: Path, version: str = CONFLIST_VERSION) -> Path:
    """Write the conflist into `conf_dir` atomically (the runtime watches the dir)."""
    import json

    conf_dir.mkdir(parents=True, exist_ok=True)
    target = conf_dir / CONFLIST_NAME
    tmp = conf_dir / f".{CONFLIST_NAME}.tmp"
    tmp.write_text(json.dumps(conflist(socket, version), indent=2) + "\n")
    os.replace(tmp, target)
    return target
