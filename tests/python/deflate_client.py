"""A compressing client for tests/deflate.rs: Python's `websockets`.

Usage: deflate_client.py URL OFFER SIZES...

OFFER names the permessage-deflate offer to make: `default` (what
websockets offers by default), or a comma-separated subset of
`server_no_context_takeover`, `client_no_context_takeover`,
`server_max_window_bits=N`, `client_max_window_bits=N`.

For every size it sends a binary and a text message of that size, whole and
fragmented, with a ping between the fragments, and checks each echo. It
prints the negotiated `Sec-WebSocket-Extensions` on the first line, then
`ok`, and exits 1 with the reason on the first mismatch.
"""

import asyncio
import sys

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory


def factory(offer):
    if offer == "default":
        return ClientPerMessageDeflateFactory(client_max_window_bits=True)
    kwargs = {}
    for part in filter(None, offer.split(",")):
        name, _, value = part.partition("=")
        kwargs[name] = int(value) if value else True
    return ClientPerMessageDeflateFactory(**kwargs)


def payload(size, text):
    # Compressible but not trivial: a repeating sentence with a counter.
    unit = "hyperws compresses this sentence, number %06d. " % 0
    body = "".join(unit.replace("000000", "%06d" % (i % 997)) for i in range(size // len(unit) + 1))[:size]
    return body if text else body.encode()


async def fragments(ws, data, parts):
    # A ping goes out between fragments, and its pong must come back
    # before the message is finished.
    step = max(1, len(data) // parts)
    for i in range(0, len(data), step):
        if i > 0:
            pong = await ws.ping()
            await asyncio.wait_for(pong, 10)
        yield data[i : i + step]


async def main():
    url, offer, sizes = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]]
    async with websockets.connect(
        url, extensions=[factory(offer)], compression=None, max_size=None, ping_interval=None
    ) as ws:
        print(ws.response.headers.get("Sec-WebSocket-Extensions", "none"), flush=True)
        for size in sizes:
            for text in (False, True):
                data = payload(size, text)
                await ws.send(data)
                echo = await ws.recv()
                if echo != data:
                    sys.exit(f"whole message of {size} bytes (text={text}) came back different")
                if size >= 2:
                    await ws.send(fragments(ws, data, 4))
                    echo = await ws.recv()
                    if echo != data:
                        sys.exit(f"fragmented message of {size} bytes (text={text}) came back different")
        await ws.close()
        if ws.close_code != 1000:
            sys.exit(f"closed with {ws.close_code}")
    print("ok", flush=True)


asyncio.run(main())
