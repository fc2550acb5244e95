"""Every table of the pipeline description has a kernel realizer and a trace step."""

from __future__ import annotations

from dataclasses import replace

import pytest

from datapath.pipeline import PIPELINE, Field, Pipeline, Table
from datapath.target.kernel import Kernel
from datapath.target.kernel.context import REALIZERS
from datapath.target.realizer import MissingRealizer
from datapath.trace import STEPS, missing_steps


def test_every_table_has_a_realizer_and_a_trace_step() -> None:
    names = [t.name for t in PIPELINE.tables]
    assert REALIZERS.missing(PIPELINE) == []
    assert missing_steps(PIPELINE) == []
    assert set(REALIZERS.tables()) == set(names) and set(STEPS) == set(names)  # nothing realized that is not described
    for t in PIPELINE.tables:  # each counted table reads its own direct counter
        assert REALIZERS.tables()[t.name].reads_counters() == t.counters, t.name


def _grown(**changes: object) -> Pipeline:
    """PIPELINE with one more table, or with a table changed."""
    if "route" in changes:
        tables = tuple(replace(t, counters=True) if t.name == "route" else t for t in PIPELINE.tables)
        return replace(PIPELINE, tables=tables)
    extra = Table("mirror", 0x02000099, (Field("port", 1, 32, "exact", string=True),), ("to_port",), 16)
    return replace(PIPELINE, tables=(*PIPELINE.tables, extra))


def test_a_table_without_realizer_or_step_is_found() -> None:
    grown = _grown()
    assert REALIZERS.missing(grown) == ["mirror"]
    assert missing_steps(grown) == ["mirror"]
    # A counted table whose realizer cannot read counters is a gap too.
    assert REALIZERS.missing(_grown(route=True)) == ["route (direct counter)"]


def test_the_kernel_refuses_a_pipeline_it_cannot_realize_before_touching_anything() -> None:
    # No namespace of this name exists: the refusal comes before any kernel call.
    with pytest.raises(MissingRealizer, match="mirror"):
        Kernel("mndt-never-made", "x-", pipeline=_grown())
