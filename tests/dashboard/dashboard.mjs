// The admin dashboard (/admin) in a real browser: Debian's Chromium driven by playwright-core.
// Starts Genesis (SQLite + memory, an admin token), then: a wrong token shows the sign-in error;
// sign-in; the overview shows all 10 tables; the Try-it flow chats as a guest, signs up and the
// inspector shows the migration; the guest list, one guest's layers, the migrations and verify
// views; every view at 1280×800 and at a phone's 390×844, each checked by axe-core (no serious
// or critical violation) and photographed. No request may leave 127.0.0.1.
//
//   node dashboard.mjs BINARY [SCREENSHOT_DIR]
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const BINARY = resolve(process.argv[2] || "../../target/debug/genesis");
const SHOTS = resolve(process.argv[3] || "../../target/dashboard-screenshots");
const ADMIN = "dashboard-test-admin-token-0123456789abcdef";
const BROWSER = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(SHOTS, { recursive: true });

let failures = 0;
function check(ok, what) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures += 1;
}

// ---- the server ------------------------------------------------------------------------------

async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), "genesis-dashboard-"));
  const server = spawn(BINARY, ["serve"], {
    env: {
      ...process.env,
      GENESIS__DATA_DIR: join(dir, "data"),
      GENESIS__SERVER__BIND: "127.0.0.1:0",
      GENESIS__ADMIN__TOKEN: ADMIN,
      GENESIS__METRICS__FLUSH_INTERVAL_SECS: "1",
      RUST_LOG: "warn",
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise((ok, fail) => {
    let out = "";
    const timeout = setTimeout(() => fail(new Error("the server did not start: " + out)), 60_000);
    server.stdout.on("data", (chunk) => {
      out += chunk;
      const m = out.match(/listening on (http:\/\/[0-9.:]+)/);
      if (m) { clearTimeout(timeout); ok(m[1]); }
    });
    server.on("exit", (code) => fail(new Error(`the server exited (${code}): ${out}`)));
  });
  return { url, stop: () => { server.kill("SIGTERM"); rmSync(dir, { recursive: true, force: true }); } };
}

// Guest traffic from outside the page, so the live charts have something to draw.
async function traffic(url, n) {
  const s = await (await fetch(url + "/v1/guest/sessions", { method: "POST" })).json();
  for (let i = 0; i < n; i += 1) {
    await fetch(`${url}/v1/guest/chat/${s.guest_id}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Guest-Token": s.guest_token },
      body: JSON.stringify({ role: i % 2 ? "assistant" : "user", content: `background message ${i}` }),
    });
  }
}

// ---- the page ----------------------------------------------------------------------------------

async function axe(page, label) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() => globalThis.axe.run(document, {
    runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
  }));
  const serious = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of serious) {
    console.log(`     ${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  }
  const minor = result.violations.filter((v) => !serious.includes(v)).map((v) => `${v.id} (${v.impact})`);
  check(serious.length === 0, `${label}: axe-core finds no serious or critical violation` +
    (minor.length ? ` (lesser: ${minor.join(", ")})` : ""));
}

async function fitsWidth(page, label) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, width: window.innerWidth,
  }));
  check(scroll <= width, `${label}: nothing wider than the screen (${scroll} ≤ ${width})`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, name + ".png"), fullPage: true });
}

async function main() {
  const server = await startServer();
  const browser = await chromium.launch({
    executablePath: BROWSER,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const outside = [];
  const cspErrors = [];
  const watch = (page) => {
    page.on("request", (r) => {
      const u = new URL(r.url());
      if (!["data:", "blob:"].includes(u.protocol) && u.hostname !== "127.0.0.1") outside.push(r.url());
    });
    page.on("console", (m) => {
      if (/Content Security Policy|Refused to/.test(m.text())) cspErrors.push(m.text());
    });
  };
  try {
    const desktop = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await desktop.newPage();
    watch(page);
    await page.goto(server.url + "/admin");

    // A wrong token: the sign-in error, and no way in.
    await page.fill("#token", "not-the-admin-token-not-the-admin-token");
    await page.click("#signin-form button[type=submit]");
    await page.waitForFunction(() => document.getElementById("signin-error").textContent.length > 0);
    const error = await page.textContent("#signin-error");
    check(/not the one/.test(error), `wrong token → "${error}"`);
    check(await page.isHidden("#nav"), "wrong token: the views stay hidden");
    check(await page.evaluate(() => sessionStorage.length === 0), "wrong token: nothing kept");
    await axe(page, "sign-in");
    await shot(page, "01-signin-error");

    // Sign in: the overview counts all 10 tables, zeros marked with their reason.
    await page.fill("#token", ADMIN);
    await page.click("#signin-form button[type=submit]");
    await page.waitForSelector("#tables li:nth-child(10)");
    const tables = await page.$$eval("#tables li", (lis) => lis.map((li) => li.dataset.table));
    check(tables.length === 10, `overview lists 10 tables: ${tables.join(", ")}`);
    const zeroWhy = await page.textContent("#tables li[data-table=cache_migrations] .why");
    check(/signed up/.test(zeroWhy || ""), `an empty table says why: "${zeroWhy}"`);
    check(!page.url().includes(ADMIN), "the token is not in the URL");
    await axe(page, "overview");

    // Try it: chat as a guest, sign up, the inspector shows the migration.
    await page.click("a[data-view=try]");
    for (const [role, text] of [["user", "What is the capital of France?"], ["assistant", "Paris."],
      ["user", "And of Italy?"]]) {
      await page.fill("#try-text", text);
      await page.click(`#try-form button[value=${role}]`);
      await page.waitForFunction((t) => [...document.querySelectorAll("#try-log li")]
        .some((li) => li.textContent.endsWith(t)), text);
    }
    await page.waitForFunction(() => /3 messages/.test(
      document.querySelector("#try-inspector .layer.l2")?.textContent || ""));
    check(true, "Try it: the inspector shows 3 messages in the cache tables");
    await axe(page, "try it (guest)");
    await shot(page, "03-try-guest");
    await page.click("#try-signup button[type=submit]");
    await page.waitForFunction(() => /completed/.test(
      document.querySelector("#try-inspector .layer.main")?.textContent || ""), null, { timeout: 15_000 });
    const migration = await page.textContent("#try-inspector .layer.main");
    check(/3 messages/.test(migration), `Try it: the inspector shows the migration: "${migration}"`);
    const mapping = await page.textContent("#try-inspector .layer.map");
    check(/3 synced/.test(mapping), `Try it: the ledger rows are synced: "${mapping}"`);
    await page.fill("#try-text", "Rome. The chat carries on in the account.");
    await page.click("#try-form button[value=assistant]");
    await page.waitForFunction(() => document.querySelectorAll("#try-log li").length === 4);
    check((await page.textContent("#try-error")) === "", "Try it: the chat carries on after sign-up");
    await shot(page, "04-try-migrated");

    // Live charts with some traffic behind them.
    await traffic(server.url, 60);
    await page.click("a[data-view=overview]");
    await page.waitForFunction(() => document.querySelectorAll("#charts polyline").length >= 5,
      null, { timeout: 20_000 });
    await page.waitForTimeout(4_500);
    const charts = await page.$$eval("#charts figure", (f) => f.length);
    check(charts === 5, `overview draws 5 live charts (${charts})`);
    const migrations = await page.textContent("#tables li[data-table=cache_migrations] .count");
    check(migrations === "1", `overview counts the migration (${migrations})`);
    await shot(page, "02-overview");

    // Guests: the list, then one guest's layers.
    await page.click("a[data-view=guests]");
    await page.waitForSelector("#guest-table tbody tr");
    const rows = await page.$$eval("#guest-table tbody tr", (trs) => trs.length);
    check(rows === 2, `the guest list shows both guests (${rows})`);
    await page.selectOption("#guest-status", "migrated");
    await page.click("#guest-filter button[type=submit]");
    await page.waitForFunction(() => document.querySelectorAll("#guest-table tbody tr").length === 1);
    check(true, "the guest list filters by status");
    await axe(page, "guests");
    await shot(page, "05-guests");
    await page.click("#guest-table tbody tr a");
    await page.waitForSelector("#guest-inspector .layer.main");
    const messages = await page.$$eval("#guest-inspector .messages li", (lis) => lis.length);
    check(messages === 3, `one guest's layers show its messages (${messages})`);
    await axe(page, "guest layers");
    await shot(page, "06-guest-layers");

    // Migrations: the audit trail, filtered.
    await page.click("a[data-view=migrations]");
    await page.waitForSelector("#migration-table tbody tr");
    await page.selectOption("#m-status", "completed");
    await page.click("#migration-filter button[type=submit]");
    await page.waitForSelector("#migration-table tbody tr .badge.completed");
    check(true, "the migrations view lists the completed migration");
    await axe(page, "migrations");
    await shot(page, "07-migrations");

    // Verify: every check shown.
    await page.click("a[data-view=verify]");
    await page.click("#verify-run");
    await page.waitForSelector("#verify-checks li");
    const checks = await page.$$eval("#verify-checks li", (lis) => lis.length);
    const bad = await page.$$eval("#verify-checks li.bad", (lis) => lis.length);
    check(checks > 0 && bad === 0, `verify shows ${checks} checks, none failing`);
    await axe(page, "verify");
    await shot(page, "08-verify");

    // A phone: every view fits the screen and passes the same check.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const small = await phone.newPage();
    watch(small);
    await small.goto(server.url + "/admin");
    await small.fill("#token", ADMIN);
    await small.click("#signin-form button[type=submit]");
    await small.waitForSelector("#charts polyline");
    for (const view of ["overview", "guests", "migrations", "verify", "try"]) {
      await small.evaluate((v) => { location.hash = "#" + v; }, view);
      await small.waitForSelector(`#view-${view}:not([hidden])`);
      await small.waitForTimeout(600);
      await fitsWidth(small, `phone ${view}`);
      await axe(small, `phone ${view}`);
      await shot(small, `09-phone-${view}`);
    }
    await phone.close();
    await desktop.close();
  } finally {
    await browser.close();
    server.stop();
  }
  check(outside.length === 0, `no request left 127.0.0.1 ${outside.length ? outside.join(", ") : ""}`);
  check(cspErrors.length === 0, `the page broke none of its own Content-Security-Policy ${cspErrors.join(" | ")}`);
  console.log(`dashboard test: screenshots in ${SHOTS}`);
  if (failures) {
    console.log(`dashboard test: ${failures} failed`);
    process.exit(1);
  }
  console.log("dashboard test: all passed");
}

main().catch((e) => { console.error(e); process.exit(1); });
