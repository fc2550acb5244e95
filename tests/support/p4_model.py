"""Flawed updates, the table model, and the spec's shape of a P4Runtime status.

`flaw` breaks one sound entry in one named way (tests.support.p4_fuzz.FLAWS
gives the codes a refusal may carry). `Tables` predicts each update of a
batch in order (ALREADY_EXISTS, NOT_FOUND, RESOURCE_EXHAUSTED, OK) and keeps
what the target answered OK for. `batch_status` checks an RPC's status as
P4Runtime section 12 shapes it (it does what grpcio-status's `from_call`
does; that package's google.rpc protos clash with finsy's in one process).
"""

from __future__ import annotations

from typing import Any, cast

import json
from dataclasses import dataclass, field, replace

import grpc
from finsy.proto import p4i, p4r, rpc_code, rpc_status
from hypothesis import strategies as st

from datapath.target.kernel.context import TABLE_BASE
from tests.support import cni as testing
from tests.support.p4_fuzz import ACTION_FLAWS, DELETE, INSERT, MODIFY, Entry, Info, Key, canonical, encode

C = rpc_code
DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class Planned:
    """One generated update: what it is meant to be, and its wire form."""

    op: p4r.Update.Type.ValueType
    entry: Entry
    flaw: str | None
    update: p4r.Update


def _exact_field(info: Info, e: Entry) -> int | None:
    exact = [fid for fid, m in e.match if m[0] == "exact"]
    return exact[0] if exact else None


def flaw(info: Info, e: Entry, op: p4r.Update.Type.ValueType, name: str | None, data: st.DataObject,
         pad: int = 0) -> Planned:
    """The update for `e`, broken in the way `name` says (None: sound)."""
    if name in ("tunnel to a prefix", "mask not a prefix"):
        e, name = _unrealizable(info, e, name)
    te = encode(info, e, pad)
    update = p4r.Update(type=op)
    if name in ACTION_FLAWS and op == DELETE:
        name = "tolerated: " + name  # DELETE considers the key only (spec 9.1)
    t = info.tables[e.table]
    if name == "unknown table":
        te.table_id = data.draw(st.integers(1, (1 << 32) - 1).filter(lambda i: i not in info.tables))
    elif name == "unknown field":
        te.match.add(field_id=data.draw(st.integers(50, 1000))).exact.value = b"\x01"
    elif name == "field twice":
        te.match.append(te.match[0])
    elif name in ("too wide", "empty bytestring"):
        ints = [fm for fm in te.match if fm.WhichOneof("field_match_type") == "exact"
                and not info.is_string(e.table, fm.field_id)]
        if not ints:
            return flaw(info, e, op, "field twice", data)
        width = info.field(e.table, ints[0].field_id).bitwidth
        ints[0].exact.value = b"" if name == "empty bytestring" else canonical(
            data.draw(st.integers(1 << width, (1 << width) + 0xFFFF)))
    elif name == "exact field missing":
        gone = _exact_field(info, e)
        kept = [fm for fm in te.match if fm.field_id != gone]
        del te.match[:]
        te.match.extend(kept)
    elif name == "wrong match kind":
        fm = next(m for m in te.match if m.field_id == _exact_field(info, e))
        value = fm.exact.value
        fm.lpm.value, fm.lpm.prefix_len = value, 1
    elif name in ("bits past the prefix", "prefix length out of range"):
        lpm = [fm for fm in te.match if fm.WhichOneof("field_match_type") == "lpm"]
        if not lpm:
            return flaw(info, e, op, "wrong match kind", data)
        if name == "bits past the prefix":
            lpm[0].lpm.prefix_len = 1
            lpm[0].lpm.value = canonical(int.from_bytes(lpm[0].lpm.value, "big") | 1)
        else:
            lpm[0].lpm.prefix_len = data.draw(st.sampled_from([0, 33, 1000]))
    elif name == "priority":
        te.priority = 0 if info.needs_priority(e.table) else data.draw(st.integers(1, 100))
    elif name == "is_const":
        te.is_const = True
    elif name == "update type unspecified":
        update.type = p4r.Update.UNSPECIFIED
    elif name in ("no port of that name", "port name not UTF-8"):
        strings = [fm for fm in te.match if info.is_string(e.table, fm.field_id)]
        to_port = te.action.action.action_id == info.action_ids["to_port"]
        if not strings and not to_port:
            return flaw(info, e, op, "is_const", data)
        bad = b"fzq-missing" if name == "no port of that name" else b"fz\xff"
        if strings:
            strings[0].exact.value = bad
        else:
            te.action.action.params[0].value = bad
            name = "no port of that name" if op != DELETE else "tolerated: bad port"
    elif name == "default entry":
        te.is_default_action = True
    elif name == "not a table entry":
        update.entity.counter_entry.counter_id = data.draw(st.integers(0, 100))
        return Planned(op, e, name, update)
    elif name is not None and not name.startswith("tolerated"):
        name = _action_flaw(info, te, e, name, data)
    update.entity.table_entry.CopyFrom(te)
    return Planned(op, e, name, update)


def _unrealizable(info: Info, e: Entry, name: str) -> tuple[Entry, str]:
    """A sound entry of a kind the target does not realize: a tunnel route to a
    prefix, a policy rule whose peer mask is not a prefix."""
    table = info.tables[e.table].preamble.name
    fid = {f.name: f.id for f in info.tables[e.table].match_fields}
    if name == "tunnel to a prefix" and table == "route":
        match = ((fid["network_id"], e.match[0][1]), (fid["dst"], ("lpm", 0x0A010000, 24)))
        return replace(e, match=match, action=("direct", info.action_ids["to_tunnel"], ((1, 0x0A000001),))), name
    if name == "mask not a prefix" and table == "policy_rule":
        rest = tuple(m for m in e.match if m[0] != fid["peer"])
        return replace(e, match=rest + ((fid["peer"], ("ternary", 0x0A000001, 0xFF0000FF)),)), name
    return e, "is_const"


def _action_flaw(info: Info, te: p4r.TableEntry, e: Entry, name: str, data: st.DataObject) -> str | None:
    selector = bool(info.tables[e.table].implementation_id)
    if name == "no action":
        te.ClearField("action")
        # A MODIFY without an action is a sound no-op (spec 9.1.2): only INSERT needs one.
        return name
    if name == "action not the table's":
        allowed = {r.id for r in info.tables[e.table].action_refs}
        action = te.action.action if not selector else te.action.action_profile_action_set.action_profile_actions[0].action
        action.action_id = data.draw(st.sampled_from(sorted(set(info.actions) - allowed) or [7]))
        return name
    if name == "NoAction":
        te.action.ClearField("type")
        te.action.action.action_id = info.action_ids["NoAction"]
        return name
    if selector and name in ("selector weight 0", "selector group too large"):
        members = te.action.action_profile_action_set.action_profile_actions
        if name == "selector weight 0":
            members[0].weight = 0
        else:
            members[0].weight = info.max_group[e.table] + 1
        return name
    if selector and name == "direct action on a selector table":
        te.action.action.action_id = info.action_ids["dnat"]
        return name
    action = te.action.action if not selector else te.action.action_profile_action_set.action_profile_actions[0].action
    spec = info.actions[action.action_id]
    if not spec.params:
        action.params.add(param_id=9, value=b"\x01")  # an extra parameter
        return "parameter missing"
    if name == "parameter too wide" and spec.params[0].bitwidth:
        action.params[0].value = canonical(1 << spec.params[0].bitwidth)
        return name
    del action.params[-1]
    return "parameter missing"


@dataclass
class Tables:
    """The entries the target answered OK for, by key, with the table sizes of the P4Info."""

    info: Info
    entries: dict[Key, Entry] = field(default_factory=dict)

    def size(self, table: int) -> int:
        return int(self.info.tables[table].size)

    def predict(self, p: Planned) -> int:
        """The sound update's code against the current contents (spec 12.2's order)."""
        e, old = p.entry, self.entries.get(p.entry.key)
        if p.op == INSERT:
            if old is not None:
                return C.ALREADY_EXISTS
            if sum(1 for k in self.entries if k[0] == e.table) >= self.size(e.table):
                return C.RESOURCE_EXHAUSTED
            return C.OK
        return C.NOT_FOUND if old is None else C.OK

    def apply(self, p: Planned) -> None:
        if p.op == DELETE:
            del self.entries[p.entry.key]
        elif p.op == INSERT or p.flaw != "no action":
            self.entries[p.entry.key] = p.entry
        # else: a MODIFY without action leaves the entry as it is (spec 9.1.2)

    def allowed(self, p: Planned) -> frozenset[int]:
        from tests.support.p4_fuzz import FLAWS

        predicted = self.predict(p)
        if p.flaw is None or p.flaw.startswith("tolerated"):
            return frozenset({predicted})
        if p.flaw == "no action" and p.op == MODIFY:
            return frozenset({predicted})
        return FLAWS[p.flaw] | ({predicted} - {C.OK})


def batch_status(err: grpc.RpcError | None, count: int,
                 messages: list[str] | None = None) -> tuple[list[int] | None, list[str]]:
    """Per-item codes of a batch RPC, or None for an RPC-wide error; and what
    breaks the spec's shape (section 12: UNKNOWN with one p4.Error per item,
    the details' code and message equal to the status's)."""
    if err is None:
        return [C.OK] * count, []
    code, message = err.code(), err.details() or ""
    raw = dict(cast(Any, err.trailing_metadata()) or ()).get(DETAILS_KEY)  # grpc-stubs type the pairs loosely
    if code != grpc.StatusCode.UNKNOWN:
        problems = [] if raw is None else [f"{code.name} carries error details (spec 12: only UNKNOWN does)"]
        return None, problems + ([] if message else [f"{code.name} without a message"])
    if raw is None:
        return None, ["UNKNOWN without the per-item details"]
    status = rpc_status.Status.FromString(raw)
    problems = []
    if status.code != C.UNKNOWN or status.message != message:
        problems.append(f"details say ({status.code}, {status.message!r}), the status ({code.name}, {message!r})")
    if len(status.details) != count:
        problems.append(f"{len(status.details)} p4.Error for {count} items")
    codes = []
    for detail in status.details:
        e = p4r.Error()
        if not detail.Unpack(e):
            problems.append(f"a detail is not a p4.v1.Error: {detail.type_url}")
            continue
        if e.canonical_code == C.OK and e.message:
            problems.append(f"an OK p4.Error with a message: {e.message!r}")
        if e.canonical_code != C.OK and not e.message:
            problems.append(f"p4.Error {e.canonical_code} without a message")
        codes.append(e.canonical_code)
        if messages is not None:
            messages.append(e.message)
    return codes, problems


def altered(info: p4i.P4Info, how: str) -> p4i.P4Info:
    """A P4Info this target does not realize (SetForwardingPipelineConfig must refuse it)."""
    out = p4i.P4Info()
    out.CopyFrom(info)
    if how == "table size":
        out.tables[0].size += 1
    elif how == "table dropped":
        del out.tables[-1]
    elif how == "empty":
        out.Clear()
    else:
        out.pkg_info.name = "another_program"
    return out


def same_entries(info: Info, read: list[p4r.TableEntry], model: dict[Key, Entry]) -> list[str]:
    from tests.support.p4_fuzz import decode

    got = {}
    for te in read:
        e = decode(info, te)
        got[e.key] = replace(e, match=tuple(sorted(e.match)))
    want = {k: replace(e, match=tuple(sorted(e.match))) for k, e in model.items()}
    problems = [f"read {len(read)} entries for {len(got)} keys"] if len(got) != len(read) else []
    for k in sorted(set(got) | set(want), key=repr):
        if got.get(k) != want.get(k):
            problems.append(f"{k}: target has {got.get(k)}, the accepted writes make {want.get(k)}")
    return problems[:10]


def leftovers(netns: str) -> list[str]:
    """What the IPU namespace holds beyond the empty pipeline."""
    links = json.loads(testing.run("ip", "-n", netns, "-j", "link", "show").stdout)
    found = [f"link {l['ifname']}" for l in links if l["ifname"].startswith("fzv")]
    routes = json.loads(testing.run("ip", "-n", netns, "-j", "route", "show", "table", "all").stdout)
    found += [f"route {r['dst']} table {r['table']}" for r in routes
              if str(r.get("table", "")).isdigit() and int(r["table"]) >= TABLE_BASE]
    rules = testing.run("ip", "-n", netns, "rule", "show").stdout
    found += [f"rule {r}" for r in rules.splitlines() if r.startswith("1000:")]
    ruleset = json.loads(testing.run("ip", "netns", "exec", netns, "nft", "-j", "list", "table", "inet", "fzipu").stdout)
    for item in ruleset["nftables"]:
        kind = next(iter(item))
        if kind in ("map", "set") and item[kind].get("elem"):
            found.append(f"{kind} {item[kind]['name']}: {item[kind]['elem'][:3]}")
        # lb_<n> chains are shared by every service of n buckets, made once: not per entry.
        if kind == "chain" and item[kind]["name"].startswith("pg_"):
            found.append(f"chain {item[kind]['name']}")
    return found
