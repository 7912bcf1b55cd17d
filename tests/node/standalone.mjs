#!/usr/bin/env node
// The standalone rtc (rtc_standalone.wasm: the cache plugged with rtc's Redis
// provider) on Node.js through jco, with no rtc code in the host: jco's WASI
// shim (preview2-shim 0.17.2) serves every import, TCP to Redis included, and
// the provider finds Redis in RTC_REDIS_URL.
//
// Usage: RTC_REDIS_URL=redis://127.0.0.1:PORT node tests/node/standalone.mjs NAMESPACE
// Stores `from-node` under key `node` and tag `shared`, reads back the key
// `native` under tag `shared` (written by the caller beforehand), then
// invalidates the tag `gone`; prints one JSON line of what it saw, and the
// error case of a call when one fails.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const module = join(here, 'out-standalone', 'rtc_standalone.js');
if (!existsSync(module)) {
  console.error(`${module} is missing: run bash core/component/compose.sh, then bash tests/node/setup.sh`);
  process.exit(2);
}
const { cache } = await import(pathToFileURL(module).href);

const namespace = process.argv[2] ?? 'node-standalone';
const text = (bytes) => (bytes === undefined ? null : new TextDecoder().decode(bytes));
const caseOf = (e) => e?.payload?.tag ?? String(e);

const seen = {};
try {
  const c = cache.Cache.open({
    namespace,
    defaultLifetime: undefined,
    lifetimeForTags: undefined,
    disabled: false,
    inLocalMemory: false,
    maxValueSize: undefined,
  });
  c.set('node', new TextEncoder().encode('from-node'), ['shared'], { tag: 'default' });
  seen.own = text(c.get('node', ['shared']));
  seen.native = text(c.get('native', ['shared']));
  c.invalidate(['gone']);
  seen.invalidated = true;
} catch (e) {
  seen.error = caseOf(e);
}
console.log(JSON.stringify(seen));
