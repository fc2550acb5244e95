"""Connect to HOST:PORT and print what answers: the emulated pods' servers
reply with their pod name, so this shows which backend a Service picked, or
that a policy dropped the connection."""

from __future__ import annotations

import argparse
import socket
import sys


def ask(host: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"hello\n")
            return s.recv(256).decode(errors="replace").strip() or "(connected, no reply)"
    except socket.timeout:
        return "timed out (dropped)"
    except OSError as err:
        return f"refused ({err.strerror or err})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--count", type=int, default=1, help="connections to make (default 1)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per connection (default 2)")
    args = parser.parse_args()
    answers = [ask(args.host, args.port, args.timeout) for _ in range(args.count)]
    for a in answers:
        print(a)
    return 0 if all(not a.startswith(("timed out", "refused")) for a in answers) else 1


if __name__ == "__main__":
    sys.exit(main())
