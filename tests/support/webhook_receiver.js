#!/usr/bin/env node
// webhook_receiver.js - a test webhook receiver that is NOT vidq's code: it
// checks every request's Standard Webhooks signature with the npm
// `standardwebhooks` package (the reference implementation).
//
// Serve:
//   node webhook_receiver.js --secret whsec_... --log FILE
//        [--fail-first K] [--fail-status 500] [--max-seconds 300] [--port N]
//   Listens on 127.0.0.1:N (default 0: any free port) and prints the port (a number alone on the first
//   line of stdout). Every request is logged as one JSON line appended to FILE:
//   {"time_ms", "method", "url", "path", "headers", "body", "verified",
//    "verify_error", "answer"}; then answered:
//     - the first K requests overall (--fail-first) get --fail-status;
//     - per URL (path + query; counted per distinct URL) the query can ask:
//         ?fail=K&status=S   the first K requests to this URL get S (default 500)
//         ?hang=K            the first K requests get no answer at all
//         ?redirect=1        always 302 to /redirect-target (never followed: a
//                            request to /redirect-target shows up in the log)
//     - anything else: 200 {"ok":true}.
//   Stops by itself after --max-seconds (default 300), or on SIGTERM.
//
// Verify one message (for tests of the check itself):
//   node webhook_receiver.js verify --secret S --id ID --timestamp T
//        --signature SIG --body-file F
//   prints {"verified":true|false,"error":...}; exit 0 if verified, else 1.
"use strict";

const fs = require("fs");
const http = require("http");
const { Webhook } = require("standardwebhooks");

function parseArgs(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith("--")) {
      const key = a.slice(2);
      const val = argv[i + 1];
      if (val === undefined || val.startsWith("--")) {
        out[key] = "1";
      } else {
        out[key] = val;
        i++;
      }
    } else {
      out._.push(a);
    }
  }
  return out;
}

function verify(wh, body, headers) {
  try {
    wh.verify(body, headers);
    return { verified: true, error: null };
  } catch (e) {
    return { verified: false, error: String(e && e.message ? e.message : e) };
  }
}

function verifyCommand(args) {
  const wh = new Webhook(args.secret);
  const body = fs.readFileSync(args["body-file"]).toString();
  const r = verify(wh, body, {
    "webhook-id": args.id,
    "webhook-timestamp": args.timestamp,
    "webhook-signature": args.signature,
  });
  process.stdout.write(JSON.stringify(r) + "\n");
  process.exit(r.verified ? 0 : 1);
}

function serve(args) {
  if (!args.secret || !args.log) {
    process.stderr.write("usage: webhook_receiver.js --secret whsec_... --log FILE\n");
    process.exit(2);
  }
  const wh = new Webhook(args.secret);
  const failFirst = parseInt(args["fail-first"] || "0", 10);
  const failStatus = parseInt(args["fail-status"] || "500", 10);
  const maxSeconds = parseInt(args["max-seconds"] || "300", 10);
  const perUrl = new Map();
  let total = 0;

  const server = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size <= 4 * 1024 * 1024) chunks.push(c);
    });
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      const u = new URL(req.url, "http://127.0.0.1");
      const q = u.searchParams;
      const n = (perUrl.get(req.url) || 0) + 1;
      perUrl.set(req.url, n);
      total++;

      let answer = 200;
      if (total <= failFirst) answer = failStatus;
      else if (q.has("hang") && n <= parseInt(q.get("hang"), 10)) answer = "hang";
      else if (q.has("redirect")) answer = 302;
      else if (q.has("fail") && n <= parseInt(q.get("fail"), 10))
        answer = parseInt(q.get("status") || "500", 10);

      const v = verify(wh, body, req.headers);
      const line = {
        time_ms: Date.now(),
        method: req.method,
        url: req.url,
        path: u.pathname,
        headers: req.headers,
        body,
        verified: v.verified,
        verify_error: v.error,
        answer,
      };
      fs.appendFileSync(args.log, JSON.stringify(line) + "\n");

      if (answer === "hang") return; // the client's timeout ends it
      if (answer === 302) {
        res.writeHead(302, { Location: "/redirect-target", "Content-Length": "0" });
        res.end();
        return;
      }
      const text = JSON.stringify(answer === 200 ? { ok: true } : { error: answer });
      res.writeHead(answer, { "Content-Type": "application/json" });
      res.end(text);
    });
  });
  server.keepAliveTimeout = 2000;
  server.listen(parseInt(args.port || "0", 10), "127.0.0.1", () => {
    process.stdout.write(server.address().port + "\n");
  });
  const stop = () => {
    server.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  setTimeout(stop, maxSeconds * 1000).unref();
}

const args = parseArgs(process.argv.slice(2));
if (args._[0] === "verify") verifyCommand(args);
else serve(args);
