#!/usr/bin/env node
// Drive vidq's web page (GET /) in headless Chromium, as a user would:
// pick a preset, choose a file, wait for the upload and transcode bars,
// then for the output to play in the page's <video> (its metadata loaded:
// a real duration and size), and check the download link. With --key, the
// page must first ask for the key; the test types it in.
//
// With --url, the page's "from a URL" field is used instead of the file
// (the server fetches it: input_url).
//
//   node web_page.js --base http://127.0.0.1:PORT --file clip.mp4
//        [--preset mp4-480p] [--key K] [--timeout-s 90] [--url URL]
// Exit 0 when it all happened, 1 with one "web_page: ..." line otherwise.
"use strict";
const { chromium } = require("playwright-core");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const base = args.base, file = args.file, preset = args.preset || "mp4-480p";
const timeout = 1000 * Number(args["timeout-s"] || 90);
if (!base || !file) {
  console.error("usage: web_page.js --base URL --file PATH [--preset P] [--key K]");
  process.exit(2);
}

(async () => {
  let browser;
  const problems = [];
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             "--autoplay-policy=no-user-gesture-required"],
    });
    const page = await browser.newPage();
    page.setDefaultTimeout(20000); /* the steps before the transcode */
    page.on("pageerror", (e) => problems.push("page error: " + e.message));
    // Errors of the page's own code fail; failed loads are judged below.
    page.on("console", (m) => { if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) problems.push("console: " + m.text()); });
    // Every answer must be a success, but the 401 that tells the page a
    // key is needed (before it was given one).
    let keyGiven = false;
    page.on("response", (r) => {
      if (r.status() < 400) return;
      if (r.status() === 401 && args.key && !keyGiven && r.url().endsWith("/v1/presets")) return;
      problems.push("HTTP " + r.status() + " for " + r.request().method() + " " + r.url());
    });
    // Anything the page asks from another origin is a failure.
    page.on("request", (r) => { if (!r.url().startsWith(base) && !r.url().startsWith("blob:") && !r.url().startsWith("data:")) problems.push("request elsewhere: " + r.url()); });
    const resp = await page.goto(base + "/");
    if (!resp || !resp.ok()) throw new Error("GET / gave HTTP " + (resp ? resp.status() : "nothing"));
    if (args.key) {
      await page.waitForSelector("#keybox:not([hidden])");
      await page.fill("#key", args.key);
      keyGiven = true;
      await page.click("#keysave");
      await page.waitForSelector("#keybox[hidden]", { state: "attached" });
    }
    // The preset list comes from /v1/presets.
    await page.waitForFunction((p) => [...document.querySelectorAll("#preset option")].some((o) => o.value === p), preset);
    await page.selectOption("#preset", preset);
    if (args.url) {
      await page.fill("#url", args.url);
      await page.click("#urlgo");
    } else {
      await page.setInputFiles("#file", file);
    }
    // The output appears once the job succeeded, and must load in the player.
    if (problems.length) throw new Error("before the upload");
    const state = await page.waitForFunction(() => {
      const v = document.querySelector("#output");
      return v && v.tagName === "VIDEO" && v.readyState >= 1 && v.duration > 0 && v.videoWidth > 0
        ? { w: v.videoWidth, h: v.videoHeight, d: v.duration } : null;
    }, null, { timeout }).then((h) => h.jsonValue());
    const up = await page.$eval("#up", (e) => e.value);
    const tc = await page.$eval("#tc", (e) => e.value);
    const status = await page.$eval("#status", (e) => e.textContent);
    const link = await page.$eval("#outputs a.download", (a) => a.textContent);
    if (up !== 100) problems.push("upload bar at " + up);
    if (tc !== 100) problems.push("transcode bar at " + tc);
    if (!/^succeeded/.test(status)) problems.push("status '" + status + "'");
    if (!link.includes(preset)) problems.push("download link '" + link + "'");
    console.log(JSON.stringify({ video: state, status, link }));
  } catch (e) {
    problems.push(String(e.message || e).split("\n")[0]);
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
  if (problems.length) {
    console.error("web_page: " + problems.join("; "));
    process.exit(1);
  }
})();
