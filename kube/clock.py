"""The one clock of API timestamps (RFC 3339, UTC).

`metav1.Time` fields (conditions' lastTransitionTime, Events) carry whole
seconds; `metav1.MicroTime` fields (a Lease's acquireTime and renewTime)
carry microseconds, which the apiserver requires there.
"""

from __future__ import annotations

import datetime


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339(when: datetime.datetime) -> str:
    """A metav1.Time: seconds precision, `Z`."""
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(when: datetime.datetime) -> str:
    """A metav1.MicroTime: microseconds, `Z`."""
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_rfc3339() -> str:
    return rfc3339(now())


def now_rfc3339_micro() -> str:
    return rfc3339_micro(now())


def parse(text: str) -> datetime.datetime:
    """Either form back to an aware datetime; ValueError names the text."""
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp") from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; RFC 3339 requires one")
    return when
