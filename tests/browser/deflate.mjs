// Headless Chromium (which offers permessage-deflate on every WebSocket)
// against the echo example in each compression mode it is given: the
// extension is negotiated, and text and binary messages of 0 B, 1 B,
// 1 KiB, 1 MiB and 16 MiB come back intact.
//
// Usage: node deflate.mjs WS_URL...
import { launch, Tally } from "./harness.mjs";

const urls = process.argv.slice(2);
if (urls.length === 0) {
  console.error("usage: node deflate.mjs WS_URL...");
  process.exit(2);
}

const browser = await launch();
const tally = new Tally();
try {
  const page = await (await browser.newContext()).newPage();
  for (const url of urls) {
    const result = await page.evaluate(async (url) => {
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      await new Promise((ok, fail) => {
        ws.onopen = ok;
        ws.onerror = () => fail(new Error("could not connect"));
      });
      const replies = [];
      let wake = null;
      ws.onmessage = (e) => {
        replies.push(e.data);
        if (wake) wake();
      };
      const next = () =>
        new Promise((ok, fail) => {
          if (replies.length) return ok(replies.shift());
          const timer = setTimeout(() => fail(new Error("no echo in 60 s")), 60_000);
          wake = () => {
            clearTimeout(timer);
            wake = null;
            ok(replies.shift());
          };
        });
      const checks = [];
      // Compressible and not trivial: a sentence with a counter.
      const text = (n) => {
        let s = "";
        for (let i = 0; s.length < n; i++) s += `chromium compresses sentence ${i % 997}. `;
        return s.slice(0, n);
      };
      for (const size of [0, 1, 1024, 1 << 20, 16 << 20]) {
        const t = text(size);
        ws.send(t);
        const echoed = await next();
        checks.push([`text ${size} B`, echoed === t]);
        const b = new TextEncoder().encode(t);
        ws.send(b);
        const back = new Uint8Array(await next());
        checks.push([`binary ${size} B`, back.length === b.length && back.every((x, i) => x === b[i])]);
      }
      ws.close(1000);
      return { extensions: ws.extensions, checks };
    }, url);
    tally.record(`${url}: negotiated (${result.extensions})`, result.extensions.startsWith("permessage-deflate"));
    for (const [name, ok] of result.checks) tally.record(`${url}: ${name}`, ok);
  }
} finally {
  await browser.close();
}
tally.finish();
