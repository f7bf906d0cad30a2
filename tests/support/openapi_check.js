#!/usr/bin/env node
// openapi_check.js DOC ROUTES_C SAMPLES_DIR - check vidq's OpenAPI document:
//  1. it is a valid OpenAPI 3.1 document (@apidevtools/swagger-parser:
//     the 3.1 schema, and every $ref resolves);
//  2. every route of svc/http/routes.c (method + pattern) is an operation
//     of it, and every operation of it is a route, unless marked
//     "x-vidq-implemented": false (a part of API.md not built yet);
//  3. every sample in SAMPLES_DIR, a real answer of the server saved as
//     <operationId>.<status>.<anything>.json, or <Schema>.<status>...json
//     against a component schema (Error for answers no operation owns, such
//     as 404/405 of unknown endpoints; WebhookEvent for webhook bodies),
//     is a documented status of that operation and validates (ajv, JSON
//     Schema 2020-12) against its application/json schema.
// Prints one line per problem and exits 1 if any; else a summary, exit 0.
'use strict';
const fs = require('fs');
const path = require('path');
const SwaggerParser = require('@apidevtools/swagger-parser');
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats').default;

const [docPath, routesPath, samplesDir] = process.argv.slice(2);
if (!docPath || !routesPath || !samplesDir) {
  console.error('usage: openapi_check.js DOC ROUTES_C SAMPLES_DIR');
  process.exit(2);
}
const problems = [];
const bad = (msg) => problems.push(msg);
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

async function main() {
  const doc = JSON.parse(fs.readFileSync(docPath, 'utf8'));
  // 1. the validator (it dereferences its argument: give it a copy)
  try {
    await SwaggerParser.validate(JSON.parse(JSON.stringify(doc)));
  } catch (e) {
    bad(`not a valid OpenAPI document: ${e.message}`);
  }
  if (doc.openapi !== '3.1.0') bad(`openapi is ${doc.openapi}, want 3.1.0`);

  // 2. routes.c <-> paths. A template segment ({x}, :x, *) matches any.
  const norm = (p) => p.split('/').map((s) => (/^(\{.*\}|:.*|\*)$/.test(s) ? '{}' : s)).join('/');
  const src = fs.readFileSync(routesPath, 'utf8');
  const table = src.slice(src.indexOf('routes[] = {'));
  const routes = [...table.matchAll(/\{\s*"([A-Z]+)",\s*"([^"]+)",\s*[a-z_]+,/g)]
    .map((m) => ({ method: m[1].toLowerCase(), path: norm(m[2]), raw: `${m[1]} ${m[2]}` }));
  if (routes.length < 20) bad(`found only ${routes.length} routes in ${routesPath}`);
  const ops = [];
  for (const [p, item] of Object.entries(doc.paths || {})) {
    for (const m of METHODS) {
      if (item[m]) ops.push({ method: m, path: norm(p), raw: `${m.toUpperCase()} ${p}`, op: item[m] });
    }
  }
  for (const r of routes) {
    if (!ops.some((o) => o.method === r.method && o.path === r.path)) {
      bad(`route ${r.raw} (routes.c) is not in the document`);
    }
  }
  for (const o of ops) {
    const built = o.op['x-vidq-implemented'] !== false;
    const routed = routes.some((r) => r.method === o.method && r.path === o.path);
    if (built && !routed) bad(`${o.raw} is documented but routes.c does not answer it`);
    if (!built && routed) bad(`${o.raw} is answered but still marked x-vidq-implemented: false`);
  }

  // 3. samples against the schemas
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  const base = 'https://vidq.invalid/openapi.json';
  // Strict about fields: an object schema with properties accepts no
  // field it does not document (unevaluatedProperties: false), so an
  // answer that grew a field the document lacks fails here. Schemas that
  // are parts of an allOf/oneOf/anyOf are left open (the keyword would
  // not see the other parts' properties).
  const components = JSON.parse(JSON.stringify(doc.components));
  const composed = new Set();
  const walk = (x, inComposition) => {
    if (!x || typeof x !== 'object') return;
    if (Array.isArray(x)) { x.forEach((y) => walk(y, inComposition)); return; }
    if (x.$ref && inComposition) composed.add(x.$ref.split('/').pop());
    const comp = ['allOf', 'oneOf', 'anyOf'].some((k) => x[k]);
    for (const [k, v] of Object.entries(x)) walk(v, ['allOf', 'oneOf', 'anyOf'].includes(k));
    if (inComposition || comp) x['x-open'] = true;
  };
  walk(components, false);
  const close = (x, name) => {
    if (!x || typeof x !== 'object') return;
    if (Array.isArray(x)) { x.forEach((y) => close(y)); return; }
    for (const v of Object.values(x)) close(v);
    if (x.properties && x.additionalProperties === undefined && !x['x-open'] && !(name && composed.has(name)))
      x.unevaluatedProperties = false;
  };
  for (const [name, sch] of Object.entries(components.schemas || {})) close(sch, name);
  ajv.addSchema({ $id: base, components });
  const byId = {};
  for (const o of ops) if (o.op.operationId) byId[o.op.operationId] = o.op;
  const resolve = (x) => {
    while (x && x.$ref) {
      x = x.$ref.slice(2).split('/').reduce((a, k) => a && a[k], doc);
    }
    return x;
  };
  let checked = 0;
  for (const f of fs.readdirSync(samplesDir).sort()) {
    const m = /^([A-Za-z]+)\.(\d{3})\..*json$/.exec(f);
    if (!m) continue;
    const [, name, status] = m;
    let body;
    try {
      body = JSON.parse(fs.readFileSync(path.join(samplesDir, f), 'utf8'));
    } catch (e) {
      bad(`${f}: not JSON: ${e.message}`);
      continue;
    }
    let ref;
    if (/^[A-Z]/.test(name)) { // a component schema (Error, WebhookEvent, ...)
      if (!(doc.components.schemas || {})[name]) { bad(`${f}: no schema ${name}`); continue; }
      ref = `${base}#/components/schemas/${name}`;
    } else {
      const op = byId[name];
      if (!op) { bad(`${f}: no operation ${name}`); continue; }
      const res = resolve((op.responses || {})[status] || (op.responses || {})[`${status[0]}XX`]);
      if (!res) { bad(`${f}: ${name} does not document status ${status}`); continue; }
      const schema = res.content && res.content['application/json'] && res.content['application/json'].schema;
      if (!schema) { bad(`${f}: ${name} ${status} documents no JSON body`); continue; }
      ref = schema.$ref ? base + schema.$ref : null;
      if (!ref) {
        const validate = ajv.compile(schema);
        if (!validate(body)) bad(`${f}: ${ajv.errorsText(validate.errors)}`);
        checked++;
        continue;
      }
    }
    const validate = ajv.getSchema(ref) || ajv.compile({ $ref: ref });
    if (!validate(body)) bad(`${f}: ${ajv.errorsText(validate.errors, { separator: '; ' })}`);
    checked++;
  }
  if (checked === 0) bad(`no sample checked in ${samplesDir}`);
  for (const p of problems) console.log(`FAIL: ${p}`);
  if (problems.length) process.exit(1);
  console.log(`openapi ok: ${ops.length} operations, ${routes.length} routes, ${checked} samples valid`);
}
main().catch((e) => { console.log(`FAIL: ${e.stack}`); process.exit(1); });
