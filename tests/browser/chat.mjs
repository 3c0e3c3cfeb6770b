// Headless Chromium opens the chat page twice, sends a message from one
// tab, and checks that the other shows it, with presence and notices. With
// a second URL (another chat process on the same Redis), the second
// visitor opens that one: the same checks then hold across processes.
//
// Usage: node chat.mjs http://127.0.0.1:PORT [http://127.0.0.1:OTHER|""] [screenshot.png]
import { launch, Tally } from "./harness.mjs";

const base = process.argv[2];
const other = process.argv[3] || base;
const shot = process.argv[4];
if (!base) {
  console.error("usage: node chat.mjs http://127.0.0.1:PORT [OTHER_URL] [screenshot.png]");
  process.exit(2);
}

const browser = await launch();
const tally = new Tally();
const check = (name, fn) => tally.check(name, fn);

try {
  // Two separate contexts: two visitors, not two tabs of one.
  const ada = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  for (const [page, url] of [[ada, base], [bob, other]]) {
    page.setDefaultTimeout(10_000);
    await page.goto(url);
    await page.waitForSelector("#status:text('connected')");
  }

  async function join(page, nick) {
    await page.fill("#nick", nick);
    await page.fill("#room", "lobby");
    await page.click("#joinbtn");
  }

  await check("both join the lobby and see each other online", async () => {
    await join(ada, "ada");
    await ada.waitForSelector("#people li:text('ada')");
    await join(bob, "bob");
    await ada.waitForSelector("#people li:text('bob')");
    await bob.waitForSelector("#people li:text('ada')");
    await ada.waitForSelector(".notice:has-text('bob joined')");
  });

  await check("a message from one tab appears in the other", async () => {
    await ada.fill("#text", "hello from ada");
    await ada.click("#send");
    await bob.waitForSelector(".msg:has-text('hello from ada')");
    const nick = await bob.textContent(".msg .nick");
    if (nick !== "ada") throw new Error(`sender shown as ${nick}`);
  });

  await check("text is shown as text, not markup", async () => {
    await bob.fill("#text", "<b>not bold</b>");
    await bob.click("#send");
    await ada.waitForSelector(".msg:has-text('<b>not bold</b>')");
    if ((await ada.locator(".msg b").count()) !== 0) throw new Error("markup was interpreted");
  });

  if (shot) await ada.screenshot({ path: shot });

  await check("leaving is announced", async () => {
    await bob.context().close();
    await ada.waitForSelector(".notice:has-text('bob left')");
    await ada.waitForFunction(() => !document.querySelector("#people").textContent.includes("bob"));
  });
} finally {
  await browser.close();
}

tally.finish();
