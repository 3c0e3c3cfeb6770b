# The fixed load for benches/callgrind/run.sh: N messages of SIZE bytes,
# echoed, on C connections (no compression). SIZE 0: each of the C loops
# opens N connections one after another instead (handshake, then close).
# SIZE -1: the same, but each connection is reset right after the 101, as
# the echo bench's handshake loop does.

import asyncio, socket, struct, sys, websockets
url, size, n, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
async def one():
    async with websockets.connect(url, compression=None, max_size=None) as ws:
        msg = b"x" * size
        for _ in range(n):
            await ws.send(msg)
            assert len(await ws.recv()) == size
async def handshakes():
    for _ in range(n):
        async with websockets.connect(url, compression=None):
            pass
async def resets():
    host, port = url.split("//")[1].rstrip("/").split(":")
    req = (f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    linger = struct.pack("ii", 1, 0)
    for _ in range(n):
        r, w = await asyncio.open_connection(host, int(port))
        w.write(req)
        await r.readuntil(b"\r\n\r\n")
        w.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        w.close()
async def main():
    for _ in range(50):
        try:
            async with websockets.connect(url, compression=None): break
        except OSError: await asyncio.sleep(0.2)
    work = resets if size < 0 else handshakes if size == 0 else one
    await asyncio.gather(*(work() for _ in range(conns)))
asyncio.run(main())
