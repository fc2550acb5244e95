"""Install the plugin binary into a CNI bin dir as a start-time-lean script.

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
