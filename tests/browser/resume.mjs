// The chat as people use it, in headless Chromium, on two chat processes
// sharing one Redis (the history lives there): two tabs stay open while
// their server is killed and restarted; a message sent meanwhile from the
// other process shows up in both tabs once, in order; a reload shows the
// history; an EventSource page follows a room across the restart; and the
// page holds at a phone's 375 px, with its input limits said out loud.
//
// Usage: node resume.mjs CHAT_BINARY redis://127.0.0.1:PORT/ PORT_A PORT_B SCREENSHOT_DIR
import { spawn } from "node:child_process";
import { launch, Tally } from "./harness.mjs";

const [binary, redis, portA, portB, shots] = process.argv.slice(2);
if (!shots) {
  console.error("usage: node resume.mjs CHAT_BINARY REDIS_URL PORT_A PORT_B SCREENSHOT_DIR");
  process.exit(2);
}
const a = `http://127.0.0.1:${portA}`;
// A room of its own: the Redis may hold other rounds' history.
const room = `away-${Date.now()}`;
const b = `http://127.0.0.1:${portB}`;

const servers = {};
async function start(port) {
  const child = spawn(binary, ["--listen", `127.0.0.1:${port}`, "--redis", redis], { stdio: "ignore" });
  servers[port] = child;
  for (let i = 0; i < 100; i += 1) {
    try {
      await fetch(`http://127.0.0.1:${port}/favicon.ico`);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`the chat did not start on ${port}`);
}
function kill(port) {
  servers[port].kill("SIGKILL");
  delete servers[port];
}

const browser = await launch();
const tally = new Tally();
const check = (name, fn) => tally.check(name, fn);
// The texts of the messages a page shows, in order.
const messages = (page) => page.$$eval("#log .msg .text", (els) => els.map((e) => e.textContent));

try {
  await start(portA);
  await start(portB);
  const tab = async (url) => {
    const page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(20_000);
    await page.goto(url);
    await page.waitForSelector("#status:text('connected')");
    return page;
  };
  const join = async (page, nick) => {
    await page.fill("#nick", nick);
    await page.fill("#room", room);
    await page.click("#joinbtn");
    await page.waitForSelector("#text:not([disabled])");
  };
  const say = async (page, text) => {
    await page.fill("#text", text);
    await page.click("#send");
  };

  const ada = await tab(a);
  const bob = await tab(a);
  const cy = await tab(b);
  const view = await (await browser.newContext()).newPage();
  view.setDefaultTimeout(20_000);

  await check("three visitors on two processes share a room", async () => {
    await join(ada, "ada");
    await join(bob, "bob");
    await join(cy, "cy");
    await say(ada, "first");
    for (const page of [ada, bob, cy]) await page.waitForSelector(".msg:has-text('first')");
    await view.goto(`${a}/rooms/${room}`);
    await view.waitForSelector(".msg:has-text('first')");
  });

  await check("a message sent while the server was down appears once, in order, after the tabs reconnect", async () => {
    kill(portA);
    for (const page of [ada, bob]) await page.waitForSelector("#status.down");
    await say(cy, "while you were away");
    await say(cy, "and again");
    await start(portA);
    for (const page of [ada, bob]) {
      await page.waitForSelector(".msg:has-text('and again')");
      await page.waitForSelector("#text:not([disabled])");
      const shown = await messages(page);
      const expected = ["first", "while you were away", "and again"];
      if (JSON.stringify(shown) !== JSON.stringify(expected)) throw new Error(`shown: ${JSON.stringify(shown)}`);
    }
    // And live again, both ways.
    await say(bob, "back");
    await cy.waitForSelector(".msg:has-text('back')");
    await ada.waitForSelector(".msg:has-text('back')");
  });

  await check("the EventSource page resumed after the restart, without repeats", async () => {
    await view.waitForSelector(".msg:has-text('back')");
    const shown = await messages(view);
    const expected = ["first", "while you were away", "and again", "back"];
    if (JSON.stringify(shown) !== JSON.stringify(expected)) throw new Error(`shown: ${JSON.stringify(shown)}`);
  });

  await check("a reload shows the history and remembers the nickname and room", async () => {
    await ada.reload();
    await ada.waitForSelector("#text:not([disabled])");
    await ada.waitForSelector(".msg:has-text('back')");
    const shown = await messages(ada);
    if (shown.length !== 4) throw new Error(`shown: ${JSON.stringify(shown)}`);
    if ((await ada.inputValue("#nick")) !== "ada") throw new Error("nickname forgotten");
  });

  await check("the limit is counted in characters and said, not cut silently", async () => {
    const emoji = "🙂".repeat(2000);
    await ada.fill("#text", emoji);
    if ((await ada.textContent("#counter")) !== "2000/2000") throw new Error(await ada.textContent("#counter"));
    if (await ada.isDisabled("#send")) throw new Error("2,000 emoji are within the limit");
    await ada.fill("#text", "x".repeat(2289));
    if ((await ada.textContent("#counter")) !== "2289/2000") throw new Error(await ada.textContent("#counter"));
    if (!(await ada.isDisabled("#send"))) throw new Error("over the limit, yet sendable");
    await ada.fill("#text", "");
  });

  await check("a blank nickname is refused and the message box stays off", async () => {
    const page = await tab(a);
    await page.fill("#nick", "  ");
    await page.click("#joinbtn");
    await page.waitForSelector(".error:has-text('pick a nickname')");
    if (!(await page.isDisabled("#text"))) throw new Error("message box enabled without a join");
    await page.context().close();
  });

  await check("at 375 px the page has no horizontal scroll, even with an unbroken line", async () => {
    const phone = await (await browser.newContext({ viewport: { width: 375, height: 700 } })).newPage();
    phone.setDefaultTimeout(20_000);
    await phone.goto(a);
    await phone.waitForSelector("#status:text('connected')");
    await join(phone, "phone");
    await say(phone, "y".repeat(1500));
    await phone.waitForSelector(".msg:has-text('yyyy')");
    const width = await phone.evaluate(() => document.documentElement.scrollWidth);
    if (width > 375) throw new Error(`scroll width ${width}`);
    await phone.screenshot({ path: `${shots}/chat-375.png` });
  });

  await ada.screenshot({ path: `${shots}/chat-resumed.png` });
} finally {
  await browser.close();
  for (const port of Object.keys(servers)) kill(port);
}

tally.finish();
