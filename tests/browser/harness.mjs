// What the browser tests share: Debian's headless Chromium (CHROMIUM
// overrides the path; never a downloaded browser) and a TAP-like tally.
import { chromium } from "playwright-core";

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    timeout: 30_000,
  });
}

export class Tally {
  passed = 0;
  failed = 0;

  record(name, ok, why = "") {
    if (ok) {
      this.passed += 1;
      console.log(`ok - ${name}`);
    } else {
      this.failed += 1;
      console.log(`not ok - ${name}${why ? `: ${why}` : ""}`);
    }
  }

  async check(name, fn) {
    try {
      await fn();
      this.record(name, true);
    } catch (err) {
      this.record(name, false, err.message);
    }
  }

  /// Prints the totals and exits: 0 only when something passed and nothing failed.
  finish() {
    console.log(`${this.passed} passed, ${this.failed} failed`);
    process.exit(this.failed === 0 && this.passed > 0 ? 0 : 1);
  }
}
