# The fixed load for benches/callgrind/run.sh: N messages of SIZE bytes,
# echoed, on C connections (no compression). SIZE 0: each of the C loops
# opens N connections one after another instead (handshake, then close).

import asyncio, sys, websockets
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
async def main():
    for _ in range(50):
        try:
            async with websockets.connect(url, compression=None): break
        except OSError: await asyncio.sleep(0.2)
    work = handshakes if size == 0 else one
    await asyncio.gather(*(work() for _ in range(conns)))
asyncio.run(main())
