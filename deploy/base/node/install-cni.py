"""Install the multinet CNI plugin and its conflist onto a node (the DaemonSet's init container).

The runtime runs `multinet-cni` on the node itself, outside any container, and
a node need not have Python. So the plugin goes in as a bundle: the image's own
interpreter, the C libraries it links (run through the bundled dynamic loader,
so the node's libc does not matter), the standard-library modules the shim
imports and the `cni` package, under `<bin-dir>/.multinet-cni/<content key>/`,
with `<bin-dir>/multinet-cni` a two-line launcher. The modules are found by
running the shim's verbs with the image's interpreter, and the bundle is run
once (VERSION, STATUS) before the launcher points at it.

The host's CNI dirs are mounted at the same paths inside the container, so a
path written here is the path on the node.

The conflist sorts first in the conf dir, so the runtime calls multinet, and
multinet's agent delegates eth0 to the next list there (the node's primary
network). Its `cniVersion` is one every runtime in use reads (containerd 1.6's
libcni cannot read a 1.1.0 result); `cniVersions` offers 1.1.0 to runtimes that
read that field, so they get STATUS and GC.

Goes once `multinet install-cni` writes a bundle and the conflist itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PLUGIN = "multinet-cni"
BUNDLES = f".{PLUGIN}"
CONFLIST = "00-multinet.conflist"

# Run by the image's interpreter with -S -E, as the installed plugin runs: every
# verb once (with and without a prevResult, as runtimes send DEL and CHECK),
# then every module the loaded package files name in an import statement,
# function-level ones included (the shim imports some only on the path that
# needs them); prints the files of everything loaded.
PROBE = r"""
import ast, importlib, io, json, os, sys
from cni import shim
env = {"CNI_CONTAINERID": "probe", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0",
       "CNI_PATH": "/nonexistent", "CNI_ARGS": "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;K8S_POD_UID=c"}
conf = {"cniVersion": "1.1.0", "name": "probe", "type": "multinet-cni", "socket": "/nonexistent/agent.sock"}
prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "mac": "0a:00:00:00:00:01", "sandbox": "/x"}],
        "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}
calls = [(verb, json.dumps(c).encode()) for verb in ("VERSION", "ADD", "DEL", "CHECK", "STATUS", "GC")
         for c in (conf, {**conf, "prevResult": prev})]
for verb, stdin in [*calls, ("ADD", b"{not json")]:
    try:
        shim.run({**env, "CNI_COMMAND": verb}, stdin, io.StringIO())
    except Exception:  # only the imports matter here, not how the verb ends
        pass
root = os.path.dirname(os.path.dirname(shim.__file__))
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None) or ""
    if not path.startswith(root + os.sep) or not path.endswith(".py"):
        continue
    for node in ast.walk(ast.parse(open(path).read())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
        for name in names:
            try:
                importlib.import_module(name)
            except ImportError:
                pass  # annotation-only names of optional packages
files = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
print(json.dumps(sorted({f for f in files if f})))
"""


def conflist(socket: Path, version: str) -> dict[str, object]:
    return {
        "cniVersion": version, "cniVersions": sorted({version, "1.1.0"}), "name": "multinet",
        "plugins": [{"type": PLUGIN, "socket": str(socket)}],
    }


def interpreter() -> Path:
    """The real interpreter binary behind this (virtualenv) Python."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))


def module_files(python: Path, package_root: Path) -> list[Path]:
    """The standard-library and `cni` files the shim's verbs import."""
    proc = subprocess.run([str(python), "-S", "-E", "-c", PROBE], capture_output=True, text=True,
                          env={"PYTHONPATH": "", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                          cwd=package_root, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"install-cni: probing the shim failed:\n{proc.stderr.strip()}")
    return [Path(f) for f in json.loads(proc.stdout)]


def shared_libraries(elf: Path) -> dict[str, Path]:
    """Name -> path of every library `elf` loads, the dynamic loader included (as ldd says)."""
    out = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, check=False).stdout
    libs = {}
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) > parts.index("=>") + 1 and parts[parts.index("=>") + 1].startswith("/"):
            path = Path(parts[parts.index("=>") + 1])
        elif parts and parts[0].startswith("/"):
            path = Path(parts[0])  # the loader itself
        else:
            continue  # linux-vdso, statically linked
        libs[path.name] = Path(os.path.realpath(path))
    return libs


def plan(python: Path, package_root: Path) -> dict[str, Path]:
    """Bundle-relative path -> source file, for everything the plugin needs on a node."""
    stdlib = Path(subprocess.run([str(python), "-S", "-E", "-c", "import os; print(os.path.dirname(os.__file__))"],
                                 capture_output=True, text=True, check=True).stdout.strip())
    version = stdlib.name  # e.g. python3.11
    files: dict[str, Path] = {"bin/python3": python}
    elves = [python]
    for source in module_files(python, package_root):
        source = Path(os.path.realpath(source))
        if source.is_relative_to(package_root):
            rel = "site/" + str(source.relative_to(package_root))
        elif source.is_relative_to(stdlib):
            rel = f"lib/{version}/" + str(source.relative_to(stdlib))
        else:
            raise SystemExit(f"install-cni: the shim imports {source}, outside the stdlib and the package")
        files[rel] = source
        if source.suffix == ".so":
            elves.append(source)
        cached = source.parent / "__pycache__" / f"{source.stem}.{sys.implementation.cache_tag}.pyc"
        if source.suffix == ".py" and cached.exists():
            files[str(Path(rel).parent / "__pycache__" / cached.name)] = cached
    # The interpreter finds its prefix by this landmark; `encodings` whole, as any
    # locale the runtime runs the plugin in may need another codec.
    files[f"lib/{version}/os.py"] = stdlib / "os.py"
    for source in (stdlib / "encodings").rglob("*"):
        if source.is_file():
            files[f"lib/{version}/" + str(source.relative_to(stdlib))] = source
    for elf in elves:
        for name, lib in shared_libraries(elf).items():
            files[f"lib/{name}"] = lib
    return files


def content_key(files: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + files[rel].read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def loader_name(files: dict[str, Path]) -> str:
    names = [rel for rel in files if rel.startswith("lib/ld-linux") or rel.startswith("lib/ld64")]
    if len(names) != 1:
        raise SystemExit(f"install-cni: expected one dynamic loader among the libraries, found {names}")
    return names[0]


def launcher(bundle: Path, loader: str) -> str:
    # The bundled loader runs the bundled interpreter against the bundled
    # libraries; -S -E: no site, no environment (the shim needs neither).
    return (
        "#!/bin/sh\n"
        "# multinet CNI plugin, installed by the multinet node DaemonSet (install-cni).\n"
        f'exec "{bundle}/{loader}" --library-path "{bundle}/lib" "{bundle}/bin/python3" -S -E '
        f'"{bundle}/plugin.py" "$@"\n'
    )


PLUGIN_PY = "import sys\nsys.path.insert(0, {site!r})\nfrom cni.shim import main\nsys.exit(main())\n"


def make_bundle(bin_dir: Path, files: dict[str, Path], key: str) -> Path:
    """Write the bundle once per content key (a node may already hold it)."""
    bundle = bin_dir / BUNDLES / key
    if (bundle / "plugin.py").exists():
        return bundle
    bundle.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=bundle.parent))
    for rel, source in files.items():
        dest = tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)  # keeps mtimes: the .pyc files stay valid
        if rel.endswith("/os.py"):
            # The interpreter's other landmark: without it every run warns on stderr.
            (dest.parent / "lib-dynload").mkdir(exist_ok=True)
    (tmp / "plugin.py").write_text(PLUGIN_PY.format(site=str(bundle / "site")))
    os.chmod(tmp, 0o755)
    try:
        os.rename(tmp, bundle)
    except OSError:  # another node sharing this bin dir got there first
        shutil.rmtree(tmp)
    return bundle


def check(script: Path) -> None:
    """Run the installed plugin as the runtime would, with an empty environment."""
    version = subprocess.run([str(script)], input=b'{"cniVersion": "1.0.0"}', env={"CNI_COMMAND": "VERSION"},
                             capture_output=True, check=False)
    try:
        supported = json.loads(version.stdout)["supportedVersions"]
    except (ValueError, KeyError):
        raise SystemExit(f"install-cni: the bundled plugin fails VERSION: {version.stderr.decode().strip()}")
    if "1.0.0" not in supported:
        raise SystemExit(f"install-cni: the bundled plugin answers VERSION with {supported}")


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def prune(bin_dir: Path, keep: set[Path]) -> None:
    """Old bundles go, except the one the previous launcher ran (a plugin may be running it)."""
    for old in (bin_dir / BUNDLES).iterdir():
        if old not in keep:
            shutil.rmtree(old, ignore_errors=True)


def previous_bundle(script: Path) -> Path | None:
    try:
        text = script.read_text()
    except OSError:
        return None
    marker = f"/{BUNDLES}/"
    if marker not in text:
        return None
    key = text.split(marker, 1)[1].split("/", 1)[0]
    return script.parent / BUNDLES / key


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Install the multinet CNI plugin and conflist onto this node.")
    parser.add_argument("--bin-dir", type=Path, required=True, help="the runtime's CNI bin dir")
    parser.add_argument("--conf-dir", type=Path, required=True, help="the runtime's CNI conf dir")
    parser.add_argument("--socket", type=Path, required=True, help="the node agent's socket")
    parser.add_argument("--cni-version", default="1.0.0", help="cniVersion of the conflist (default 1.0.0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for flag, value in (("--bin-dir", args.bin_dir), ("--conf-dir", args.conf_dir), ("--socket", args.socket)):
        if not value.is_absolute():
            raise SystemExit(f"install-cni: {flag} must be an absolute path, got {value}")
    import cni  # the image's package

    package_root = Path(cni.__file__).resolve().parent.parent
    files = plan(interpreter(), package_root)
    key = content_key(files)
    args.bin_dir.mkdir(parents=True, exist_ok=True)
    bundle = make_bundle(args.bin_dir, files, key)
    script = args.bin_dir / PLUGIN
    previous = previous_bundle(script)
    staged = args.bin_dir / f".{PLUGIN}.{key}"
    write_atomic(staged, launcher(bundle, loader_name(files)), 0o755)
    check(staged)
    os.replace(staged, script)
    prune(args.bin_dir, {bundle} | ({previous} if previous else set()))
    args.conf_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(args.conf_dir / CONFLIST, json.dumps(conflist(args.socket, args.cni_version), indent=2) + "\n")
    print(f"install-cni: {script} (bundle {key}, {len(files)} files), {args.conf_dir / CONFLIST} "
          f"(cniVersion {args.cni_version}, agent socket {args.socket})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
