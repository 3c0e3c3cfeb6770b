// The auth example in headless Chromium: a WebSocket authenticated by the
// session cookie, by a ticket in the URL and by a ticket offered as a
// subprotocol (answered with chat.v1, never the ticket); nothing before
// logging in; and a page of another origin (the same example on another
// port, which the browser sends the cookie from too) refused by the
// same-origin check.
//
// Usage: node auth.mjs http://127.0.0.1:PORT_A http://127.0.0.1:PORT_B
import { launch, Tally } from "./harness.mjs";

const [home, elsewhere] = process.argv.slice(2);
if (!elsewhere) {
  console.error("usage: node auth.mjs URL_A URL_B");
  process.exit(2);
}
const browser = await launch();
const tally = new Tally();
const check = (name, fn) => tally.check(name, fn);
const line = (page, text) => page.waitForSelector(`#log li:text-is(${JSON.stringify(text)})`);

try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(home);

  await check("no cookie, no WebSocket", async () => {
    await page.click("#cookie");
    await line(page, "cookie: closed (1006)");
    const opened = await page.$$eval("#log li", (els) => els.some((e) => e.textContent.includes("open")));
    if (opened) throw new Error("a WebSocket opened before logging in");
  });

  await page.fill("#name", "dana");
  await page.click("#login button");
  await page.waitForSelector("#who:text('logged in as dana')");

  await check("the session cookie authenticates the WebSocket", async () => {
    await page.click("#cookie");
    await line(page, "cookie: hello dana (via cookie)");
  });

  await check("a ticket in the URL authenticates the WebSocket", async () => {
    await page.click("#ticket");
    await line(page, "ticket: hello dana (via query ticket)");
  });

  await check("a ticket as subprotocol authenticates, and chat.v1 is what is answered", async () => {
    await page.click("#protocol");
    await line(page, "protocol: open, protocol chat.v1");
    await line(page, "protocol: hello dana (via protocol)");
  });

  await check("another origin's page cannot use the cookie (same-origin check)", async () => {
    const other = await context.newPage();
    await other.goto(elsewhere);
    const target = `${home.replace("http", "ws")}/ws/cookie`;
    const outcome = await other.evaluate((url) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve("open");
      ws.onclose = (e) => resolve(`closed ${e.code}`);
    }), target);
    if (outcome !== "closed 1006") throw new Error(`the cross-origin WebSocket ended as: ${outcome}`);
    // The same page, on its own origin, does get in with its own login.
    await other.fill("#name", "dana");
    await other.click("#login button");
    await other.waitForSelector("#who:text('logged in as dana')");
    await other.click("#cookie");
    await line(other, "cookie: hello dana (via cookie)");
  });
} finally {
  await browser.close();
}

tally.finish();
