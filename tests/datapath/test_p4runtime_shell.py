"""p4lang's p4runtime-shell drives the IPU target: the datapath README's
commands, run as written in p4runtime-shell's own interpreter (a separate
process and virtualenv, since it pins protobuf<3.21; hack/setup makes it)
against a real `multinet ipu`, then checked with multinet's own client and
in the kernel."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from finsy.proto import p4i
from google.protobuf import text_format

from datapath.client.p4rt import P4RuntimeClient
from datapath.entries import ActionCall, Exact, entry, ip, prefix
from datapath.pipeline import P4INFO_FILE, PIPELINE
from tests.datapath.conftest import PREFIX, Env, netns

REPO = Path(__file__).resolve().parents[2]
README = REPO / "datapath" / "README.md"
SHELL_PYTHON = ".venv-p4runtime-shell/bin/python"  # hack/setup (hack/p4runtime-shell.txt)
SECTION = "## Driving the target with p4runtime-shell"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\x1b\][^\x07]*\x07")  # IPython's colours and terminal title

needs_shell = pytest.mark.skipif(not (REPO / SHELL_PYTHON).exists(),
                                 reason=f"needs p4runtime-shell in {SHELL_PYTHON} (hack/setup installs it)")


def readme_blocks() -> dict[str, str]:
    """The first fenced block of each language in the README's p4runtime-shell section."""
    text = README.read_text()
    assert SECTION in text, f"{README.name} lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, str] = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, re.S):
        blocks.setdefault(lang, body)
    return blocks


def shell_command(sh: str, address: str) -> list[str]:
    """The README's `python -m p4runtime_sh ...` line, pointed at `address`."""
    lines = sh.replace("\\\n", " ").splitlines()
    [line] = [x for x in lines if "-m p4runtime_sh" in x]
    argv = shlex.split(line, comments=True)
    assert argv[0] == SHELL_PYTHON and "--grpc-addr" in argv, argv
    argv[argv.index("--grpc-addr") + 1] = address
    return argv


@netns
@needs_shell
def test_p4runtime_shell_pushes_the_pipeline_and_writes_and_reads_an_entry(env: Env, tmp_path: Path) -> None:
    node = env.node("n1")
    address = env.targets["n1"].address
    blocks = readme_blocks()
    # IPython reads the piped lines as a user's input; its profile goes to tmp_path, not $HOME.
    run = subprocess.run(shell_command(blocks["sh"], address), cwd=REPO, input=blocks["python"], text=True,
                         capture_output=True, timeout=180,
                         env={**os.environ, "TERM": "dumb", "IPYTHONDIR": str(tmp_path / "ipython")})
    out = ANSI.sub("", run.stdout)
    assert run.returncode == 0, run.stderr + out
    # The read printed the entry as the target stored it (the shell decodes names from the P4Info).
    to_tunnel = PIPELINE.action("to_tunnel").id
    assert f'action_id: {to_tunnel} ("to_tunnel")' in out and r'value: "\\xc0\\x00\\x02\\x02"' in out, out
    # The second insert: the shell read the per-update p4.Error of the target's status.
    assert "At index 0: ALREADY_EXISTS, 'route: entry already exists'" in out, out

    # The target stored what the shell wrote: multinet's client reads it back, and the pipeline it pushed.
    client = P4RuntimeClient(address)
    client.open()
    want = entry("route", {"network_id": Exact(4242), "dst": prefix("10.42.0.7/32")},
                 ActionCall("to_tunnel", (ip("192.0.2.2"),)))
    assert client.read("route") == [want]
    checked_in = text_format.Parse((REPO / "datapath" / P4INFO_FILE).read_text(), p4i.P4Info())
    assert client.get_pipeline().p4info == checked_in
    client.close()
    # And realized it: the host route through the network's VXLAN device.
    routes = subprocess.run(["ip", "-n", node.ipu_ns, "route", "show", "table", "all"], capture_output=True,
                            text=True, check=True).stdout
    assert f"10.42.0.7 dev {PREFIX}v4242" in routes, routes
