"""TLS for the P4Runtime session: the target's serving credentials and the
client's channel credentials, both from PEM files (the cluster PKI issues
them; kube/pki.py can). Mutual TLS when the target is given a client CA:
then only a client holding a certificate of that CA gets a session.

The target listens on a node-local address by default; TLS is for a target
reached over a network (a real IPU's own P4Runtime endpoint, or a software
target bound beyond loopback).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # grpc loads only when credentials are made: every `multinet` command parses these flags
    import grpc


class TlsConfigError(ValueError):
    """A TLS flag is missing its partner or names a file that cannot be read."""


def _read(flag: str, path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as err:
        raise TlsConfigError(f"{flag} {path}: {err.strerror or err}") from None


@dataclass(frozen=True)
class ServerTls:
    cert: Path
    key: Path
    client_ca: Path | None = None  # require and verify client certificates

    def credentials(self) -> grpc.ServerCredentials:
        import grpc

        cert, key = _read("--tls-cert", self.cert), _read("--tls-key", self.key)
        assert cert is not None and key is not None
        ca = _read("--tls-client-ca", self.client_ca)
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


@dataclass(frozen=True)
class ClientTls:
    ca: Path  # the CA the target's certificate must chain to
    cert: Path | None = None  # this client's certificate, for a target that asks for one
    key: Path | None = None

    def credentials(self, prefix: str = "--p4runtime-tls") -> grpc.ChannelCredentials:
        import grpc

        return grpc.ssl_channel_credentials(root_certificates=_read(f"{prefix}-ca", self.ca),
                                            private_key=_read(f"{prefix}-key", self.key),
                                            certificate_chain=_read(f"{prefix}-cert", self.cert))


def add_server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve P4Runtime over TLS with this certificate")
    parser.add_argument("--tls-key", type=Path, metavar="FILE", help="the private key of --tls-cert")
    parser.add_argument("--tls-client-ca", type=Path, metavar="FILE",
                        help="require client certificates signed by this CA (mutual TLS)")


def server_from_args(args: argparse.Namespace) -> ServerTls | None:
    if args.tls_cert is None and args.tls_key is None:
        if args.tls_client_ca is not None:
            raise TlsConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise TlsConfigError("--tls-cert and --tls-key go together")
    return ServerTls(args.tls_cert, args.tls_key, args.tls_client_ca)


def add_client_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--p4runtime-tls-ca", type=Path, metavar="FILE",
                        help="reach the P4Runtime target over TLS, verifying it against this CA")
    parser.add_argument("--p4runtime-tls-cert", type=Path, metavar="FILE",
                        help="client certificate for a target that requires one")
    parser.add_argument("--p4runtime-tls-key", type=Path, metavar="FILE", help="the private key of --p4runtime-tls-cert")


def client_from_args(args: argparse.Namespace) -> ClientTls | None:
    if (args.p4runtime_tls_cert is None) != (args.p4runtime_tls_key is None):
        raise TlsConfigError("--p4runtime-tls-cert and --p4runtime-tls-key go together")
    if args.p4runtime_tls_ca is None:
        if args.p4runtime_tls_cert is not None:
            raise TlsConfigError("--p4runtime-tls-cert needs --p4runtime-tls-ca")
        return None
    return ClientTls(args.p4runtime_tls_ca, args.p4runtime_tls_cert, args.p4runtime_tls_key)
