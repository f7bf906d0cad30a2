#!/usr/bin/env node
// raw_upload.js - POST a file as one raw body with node's http module (the
// same runtime and stream plumbing tus-js-client uses), so that the tus
// benchmark can compare tus-js-client with a raw upload from the same kind
// of client. Prints {"status":n,"seconds":f}; exit 0 when an answer came.
// node raw_upload.js URL FILE
'use strict';
const fs = require('fs');
const http = require('http');

const [url, file] = process.argv.slice(2);
if (!url || !file) {
  process.stderr.write('usage: raw_upload.js URL FILE\n');
  process.exit(2);
}
const size = fs.statSync(file).size;
const t0 = process.hrtime.bigint();
const req = http.request(url, {
  method: 'POST',
  headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': size },
}, (res) => {
  res.resume();
  res.on('end', () => {
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write(JSON.stringify({ status: res.statusCode, seconds }) + '\n');
    process.exit(0);
  });
});
req.on('error', (e) => {
  process.stderr.write(`raw_upload.js: ${e.message}\n`);
  process.exit(1);
});
fs.createReadStream(file).pipe(req);
