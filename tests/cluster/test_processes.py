"""Process records: a recorded pid is signalled only while it is the same process."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from multinet.cluster.processes import ProcessRecord, is_running, spawn, stop


def test_spawn_record_stop(tmp_path: Path) -> None:
    record = spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "s.log")
    path = tmp_path / "sleeper.json"
    record.save(path)
    loaded = ProcessRecord.load(path)
    assert loaded == record and is_running(loaded)
    assert stop(loaded) is True
    assert not is_running(loaded)
    assert stop(loaded) is False  # already gone: nothing to signal


def test_recycled_pid_is_not_signalled(tmp_path: Path) -> None:
    record = spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "s.log")
    impostor = replace(record, start_time=record.start_time + 1)  # same pid, another process
    assert not is_running(impostor)
    assert stop(impostor) is False
    assert is_running(record)  # the real process was left alone
    stop(record)


def test_corrupt_record_loads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    assert ProcessRecord.load(path) is None


def test_port_offset_moves_every_port(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from multinet.cluster.layout import Ports

    monkeypatch.setenv("MULTINET_PORT_OFFSET", "1000")
    assert Ports.from_env() == Ports(3379, 3380, 7443, 11257, 11259)
    monkeypatch.setenv("MULTINET_PORT_OFFSET", "lots")
    with pytest.raises(ValueError, match="MULTINET_PORT_OFFSET"):
        Ports.from_env()
