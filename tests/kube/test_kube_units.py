"""Pure parts of the adapter: URL paths, the clock, error translation."""

from __future__ import annotations

import datetime

import pytest
from kubernetes.client.exceptions import ApiException

from kube import AlreadyExists, Conflict, Gone, Invalid, KubeError, NotFound, Resource, ServerError, Unreachable
from kube import clock
from kube.errors import api_errors
from kube.resources import NAMESPACES, PODS

WIDGETS = Resource("example.io", "v1", "widgets")


def test_paths_of_core_group_and_custom_resources() -> None:
    assert PODS.path() == "/api/v1/pods"
    assert PODS.path("ns", "p", "status") == "/api/v1/namespaces/ns/pods/p/status"
    assert NAMESPACES.path(None, "kube-system") == "/api/v1/namespaces/kube-system"
    assert WIDGETS.path("ns", "a b") == "/apis/example.io/v1/namespaces/ns/widgets/a%20b"
    assert WIDGETS.api_version == "example.io/v1" and PODS.api_version == "v1"


def test_path_refuses_a_namespace_for_a_cluster_scoped_kind() -> None:
    with pytest.raises(ValueError, match="namespaces is cluster-scoped: namespace 'x'"):
        NAMESPACES.path("x", "y")
    with pytest.raises(ValueError, match="subresource 'status' needs an object name"):
        PODS.path("ns", None, "status")


def test_clock_forms_and_round_trip() -> None:
    when = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc)
    assert clock.rfc3339(when) == "2024-05-06T07:08:09Z"
    assert clock.rfc3339_micro(when) == "2024-05-06T07:08:09.123456Z"
    assert clock.parse("2024-05-06T07:08:09.123456Z") == when
    assert clock.parse(clock.now_rfc3339()).tzinfo is not None
    with pytest.raises(ValueError, match="has no time zone"):
        clock.parse("2024-05-06T07:08:09")
    with pytest.raises(ValueError, match="is not an RFC 3339 timestamp"):
        clock.parse("yesterday")


@pytest.mark.parametrize("status,reason,expected", [
    (404, "NotFound", NotFound), (409, "AlreadyExists", AlreadyExists), (409, "Conflict", Conflict),
    (410, "Expired", Gone), (422, "Invalid", Invalid), (503, "ServiceUnavailable", ServerError),
    (418, "Teapot", KubeError),
])
def test_client_exception_becomes_its_typed_error_chained(status: int, reason: str, expected: type) -> None:
    original = ApiException(status=status, reason=reason)
    original.body = f'{{"kind": "Status", "reason": "{reason}", "message": "said {status}"}}'
    with pytest.raises(KubeError) as exc:
        with api_errors():
            raise original
    assert type(exc.value) is expected and exc.value.__cause__ is original
    assert (exc.value.status, exc.value.reason, str(exc.value)) == (status, reason, f"said {status}")


def test_body_that_is_not_a_status_still_gives_a_message() -> None:
    with pytest.raises(NotFound, match="HTTP 404: Not Found"):
        with api_errors():
            raise ApiException(status=404, reason="Not Found")
    original = ApiException(status=500, reason="Internal")
    original.body = "404 page not found"
    with pytest.raises(ServerError, match="404 page not found"):
        with api_errors():
            raise original


def test_connection_errors_are_unreachable() -> None:
    with pytest.raises(Unreachable) as exc:
        with api_errors():
            raise ConnectionRefusedError("refused")
    assert isinstance(exc.value.__cause__, ConnectionRefusedError) and exc.value.temporary
