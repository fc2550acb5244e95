"""What runs inside an emulated pod: a server on each of the pod's container
ports that answers with the pod's name, so probes, Services and policy can be
observed from outside. TCP: one line, `<pod>\\n`, or an HTTP 200 with that body
if the client speaks HTTP. UDP: the same line back to each datagram."""

from __future__ import annotations

import argparse
import asyncio
import signal


async def _tcp(name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    body = f"{name}\n".encode()
    try:
        first = await asyncio.wait_for(reader.read(1024), timeout=1.0)
    except (asyncio.TimeoutError, ConnectionError):
        first = b""
    if first[:4] in (b"GET ", b"HEAD"):
        head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\nContent-Type: text/plain\r\n\r\n"
        writer.write(head.encode() + body)
    else:
        writer.write(body)
    try:
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    except ConnectionError:
        pass


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.body = f"{name}\n".encode()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport:
            self.transport.sendto(self.body, addr)


async def serve(name: str, tcp: list[int], udp: list[int], ready_file: str | None) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    # host=None listens on every address of both families (one socket each;
    # asyncio makes IPv6 sockets v6-only).
    servers = [await asyncio.start_server(lambda r, w: _tcp(name, r, w), host=None, port=p) for p in tcp]
    for port in udp:
        for host in ("0.0.0.0", "::"):
            try:
                await loop.create_datagram_endpoint(lambda: _Udp(name), local_addr=(host, port))
            except OSError:  # IPv6 disabled in this sandbox
                pass
    if ready_file:  # the emulator reports the container started only once we listen
        with open(ready_file, "w") as f:
            f.write("ready\n")
    await stop
    for s in servers:
        s.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="answer on the pod's ports with the pod's name")
    parser.add_argument("--name", required=True, help="the pod's name, sent back to clients")
    parser.add_argument("--tcp", type=int, action="append", default=[], help="a TCP port (repeatable)")
    parser.add_argument("--udp", type=int, action="append", default=[], help="a UDP port (repeatable)")
    parser.add_argument("--ready-file", help="created once every port is listening")
    args = parser.parse_args()
    asyncio.run(serve(args.name, args.tcp, args.udp, args.ready_file))


if __name__ == "__main__":
    main()
