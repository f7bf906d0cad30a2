#!/usr/bin/env node
// tus_upload.js - a real tus client (the npm tus-js-client, not ours) for
// the vidq tests and benchmark. Prints one JSON object per line on stdout:
//   {"event":"url","url":...}            the upload URL (also written to --url-file)
//   {"event":"chunk","offset":n,"total":n}
//   {"event":"aborted","url":...,"offset":n}   after --stop-after bytes
//   {"event":"success","url":...,"offset":n,"seconds":f}
//   {"event":"error","message":...,"status":n|null}
// Exit 0 on success or a requested abort, 1 on an error, 2 on bad usage.
//
// node tus_upload.js --endpoint URL --file PATH [--chunk-size N] [--stop-after N]
//        [--resume-url URL | --url-file PATH (read when it exists: resume)]
//        [--meta key=value]... [--header 'Name: value']...
'use strict';
const fs = require('fs');
const tus = require('tus-js-client');

function usage(msg) {
  process.stderr.write(`tus_upload.js: ${msg}\n`);
  process.exit(2);
}

const opt = { chunkSize: 1024 * 1024, stopAfter: 0, meta: {}, headers: {} };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const v = argv[i + 1];
  if (v === undefined) usage(`${a} needs a value`);
  i++;
  switch (a) {
    case '--endpoint': opt.endpoint = v; break;
    case '--file': opt.file = v; break;
    case '--chunk-size': opt.chunkSize = Number(v); break;
    case '--stop-after': opt.stopAfter = Number(v); break;
    case '--resume-url': opt.resumeUrl = v; break;
    case '--url-file': opt.urlFile = v; break;
    case '--meta': {
      const k = v.indexOf('=');
      if (k <= 0) usage('--meta wants key=value');
      opt.meta[v.slice(0, k)] = v.slice(k + 1);
      break;
    }
    case '--header': {
      const k = v.indexOf(':');
      if (k <= 0) usage('--header wants "Name: value"');
      opt.headers[v.slice(0, k).trim()] = v.slice(k + 1).trim();
      break;
    }
    default: usage(`unknown option ${a}`);
  }
}
if (!opt.endpoint || !opt.file) usage('--endpoint and --file are required');
if (!(opt.chunkSize > 0)) usage('--chunk-size must be > 0');
if (!opt.resumeUrl && opt.urlFile && fs.existsSync(opt.urlFile)) {
  opt.resumeUrl = fs.readFileSync(opt.urlFile, 'utf8').trim();
}

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const size = fs.statSync(opt.file).size;
const t0 = process.hrtime.bigint();
let done = false;

const upload = new tus.Upload(fs.createReadStream(opt.file), {
  endpoint: opt.endpoint,
  uploadUrl: opt.resumeUrl || null,
  chunkSize: opt.chunkSize,
  uploadSize: size,
  metadata: opt.meta,
  headers: opt.headers,
  retryDelays: null,
  storeFingerprintForResuming: false,
  removeFingerprintOnSuccess: false,
  onUploadUrlAvailable() {
    out({ event: 'url', url: upload.url });
    if (opt.urlFile) fs.writeFileSync(opt.urlFile, upload.url + '\n');
  },
  onChunkComplete(_chunk, accepted, total) {
    out({ event: 'chunk', offset: accepted, total });
    if (opt.stopAfter > 0 && accepted >= opt.stopAfter && accepted < total && !done) {
      done = true;
      // abort(false): stop without DELETE (termination), as a dropped
      // network would; the server keeps what it acknowledged.
      upload.abort(false).then(() => {
        out({ event: 'aborted', url: upload.url, offset: accepted });
        process.exit(0);
      });
    }
  },
  onSuccess() {
    if (done) return;
    done = true;
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    out({ event: 'success', url: upload.url, offset: size, seconds: s });
    process.exit(0);
  },
  onError(err) {
    const status = err.originalResponse ? err.originalResponse.getStatus() : null;
    out({ event: 'error', message: String(err.message || err), status });
    process.exit(1);
  },
});
upload.start();
