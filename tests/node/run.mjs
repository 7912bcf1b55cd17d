#!/usr/bin/env node
// The rtc component on a second host: Node.js, through jco.
//
// Loads the component transpiled by setup.sh (out/rtc_component.js), whose
// rtc:cache imports are served by backend.js (Redis as an in-memory Map) and
// hooks.js (records reports), then runs
//   - the scenario table, tests/scenarios.txt (every scenario whose steps
//     this runner knows; the others are counted as skipped), checking along
//     the way that only get-or-compute reports to hooks;
//   - contract tests: errors of the Redis import surface as the same case of
//     the WIT error variant, wrong replies as `other`, hooks reports, the
//     stampede lock, lifetimes, disabled and in-local-memory caches, two
//     instances sharing one store.
// It prints one summary line per part,
//   scenarios: N passed, N failed, N skipped
//   contract: N passed, N failed
// and exits 0 when nothing failed, 1 on a failure, 2 when it cannot run
// (setup.sh not run, or run before the last build of the component).
//
// Usage: node tests/node/run.mjs [--redis URL] [--table FILE] [--only NAME]...
//   --redis URL   serve the Redis import from this real Redis, through the
//                 worker-thread bridge of redis-bridge.js (default: the
//                 in-memory Map of backend.js); the runner flushes it
//   --table FILE  the scenario table (default: tests/scenarios.txt)
//   --only NAME   run only this scenario or contract test (repeatable)

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { control } from './backend.js';
import * as hooks from './hooks.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const SETUP = 'bash tests/node/setup.sh';
const BUILD = 'cargo build --profile component --locked --target wasm32-wasip2 -p rtc-component';

function cannotRun(message) {
  console.error(`tests/node/run.mjs: ${message}`);
  process.exit(2);
}

// ---------------------------------------------------------------- arguments

const options = { table: join(root, 'tests', 'scenarios.txt'), only: [], redis: null };
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  if (arg === '--table' && i + 1 < process.argv.length) options.table = resolve(process.argv[++i]);
  else if (arg === '--only' && i + 1 < process.argv.length) options.only.push(process.argv[++i]);
  else if (arg === '--redis' && i + 1 < process.argv.length) options.redis = process.argv[++i];
  else cannotRun(`unknown argument ${JSON.stringify(arg)}\nusage: node tests/node/run.mjs [--redis URL] [--table FILE] [--only NAME]...`);
}
const selected = (name) => options.only.length === 0 || options.only.includes(name);

// ------------------------------------------------ the transpiled component

function checkSetup() {
  const out = join(here, 'out');
  if (!existsSync(join(here, 'node_modules', '@bytecodealliance', 'preview2-shim', 'package.json'))) {
    cannotRun(`tests/node/node_modules is not installed: run \`${SETUP}\` (after \`${BUILD}\`)`);
  }
  if (!existsSync(join(out, 'rtc_component.js')) || !existsSync(join(out, 'SOURCE.json'))) {
    cannotRun(`the component is not transpiled (tests/node/out/ is missing): run \`${SETUP}\` (after \`${BUILD}\`)`);
  }
  const wasm = resolve(process.env.RTC_COMPONENT ?? join(root, 'target', 'wasm32-wasip2', 'component', 'rtc_component.wasm'));
  if (!existsSync(wasm)) cannotRun(`the rtc component is not built: ${wasm} is missing; build it with \`${BUILD}\``);
  const source = JSON.parse(readFileSync(join(out, 'SOURCE.json'), 'utf8'));
  const sha256 = createHash('sha256').update(readFileSync(wasm)).digest('hex');
  if (source.sha256 !== sha256) {
    cannotRun(`tests/node/out/ was transpiled from another build of the component than ${wasm} (stale): run \`${SETUP}\` again`);
  }
}

checkSetup();
if (options.redis) {
  try {
    control.useRedis(options.redis);
    control.reset();
  } catch (error) {
    cannotRun(`cannot use the Redis at ${options.redis}: ${error.message}`);
  }
}
console.log(`store: ${options.redis ? `redis at ${options.redis}` : 'in-memory map'}`);
const { cache: first } = await import('./out/rtc_component.js');
// A second instance of the component: the same module under another URL is
// evaluated again (its own wasm instance), and imports the same backend.js.
const { cache: second } = await import(`${pathToFileURL(join(here, 'out', 'rtc_component.js')).href}?instance=2`);
const { Cache, Found } = first;

// ------------------------------------------------------------------ helpers

const encoder = new TextEncoder();
const bytes = (s) => encoder.encode(s);
const DEFAULT = { tag: 'default' };
const NO_FUNCTION = { module: '', typeName: '', function: '' };
const dispose = Symbol.dispose ?? Symbol.for('dispose');

let namespaces = 0;
function namespace(name) {
  namespaces += 1;
  return `node-${name}-${process.pid}-${Date.now()}-${namespaces}`;
}

function open(name, config = {}, module = first) {
  return module.Cache.open({ namespace: namespace(name), disabled: false, inLocalMemory: false, ...config });
}

function lockOptions(lockTimeoutMs, extra = {}) {
  return { lockTimeoutMs, function: NO_FUNCTION, arguments: new Uint8Array(), method: false, ...extra };
}

function show(value) {
  if (value === undefined) return 'none';
  if (!(value instanceof Uint8Array)) return String(value);
  const text = Buffer.from(value).toString('utf8');
  const printable = /^[\p{L}\p{N}\p{P}\p{S}]*$/u.test(text) && Buffer.from(text, 'utf8').equals(Buffer.from(value));
  return printable && value.length > 0 ? JSON.stringify(text) : `x:${Buffer.from(value).toString('hex')}`;
}

function sameBytes(a, b) {
  return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a).equals(Buffer.from(b));
}

function describe(error) {
  if (error && typeof error === 'object' && 'payload' in error) return `error ${JSON.stringify(error.payload)}`;
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(typeof message === 'function' ? message() : message);
}

/** Runs `f`, which must fail with the WIT error case `tag`; returns the payload. */
function expectError(tag, what, f) {
  let result;
  try {
    result = f();
  } catch (error) {
    check(error && typeof error === 'object' && 'payload' in error, () => `${what}: threw ${describe(error)}, not a WIT error (a trap?)`);
    check(error.payload?.tag === tag, () => `${what}: failed with ${JSON.stringify(error.payload)}, expected the \`${tag}\` case`);
    check(typeof error.payload.val === 'string', () => `${what}: the \`${tag}\` case carries no message`);
    return error.payload;
  }
  throw new Failure(`${what}: returned ${show(result)}, expected the \`${tag}\` error`);
}

/** get-or-compute through the WIT's two halves, with the lock. */
function getOrCompute(cache, key, tags, computed, extra = {}) {
  const lookup = cache.getOrLock(key, tags, lockOptions(5000n, extra));
  if (lookup.tag === 'hit') {
    // Reports the hit (the runner's caches come from the first instance).
    Found.finish(lookup.val.found);
    return { value: lookup.val.value, ran: false, lookup };
  }
  const ticket = lookup.val;
  check(lookup.tag === 'locked' && ticket.holdsLock(), () => `get-or-lock asked for the lock, nobody else holds it, yet returned \`${lookup.tag}\``);
  cache.setAndUnlock(ticket, computed, DEFAULT);
  return { value: computed, ran: true, lookup };
}

// --------------------------------------------------------- scenario table

// Mirrors the parser of tests/src/scenarios.rs; a step kind it does not know
// makes its scenario skipped (not failed), with the reason.
function parseTable(text) {
  const scenarios = [];
  const tagList = (field) => (field === '-' ? [] : field.split(','));
  const value = (field) => {
    if (!field.startsWith('x:')) return bytes(field);
    const hex = field.slice(2);
    if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return null;
    return Uint8Array.from(Buffer.from(hex, 'hex'));
  };
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    const n = index + 1;
    if (line === '' || line.startsWith('#')) return;
    const f = line.split(/\s+/);
    if (f[0] === 'scenario' && f.length >= 2) {
      scenarios.push({ name: f[1], steps: [], unsupported: null, malformed: null });
      return;
    }
    const scenario = scenarios.at(-1);
    if (!scenario) throw new Error(`line ${n}: step before any scenario`);
    const bad = () => { scenario.malformed ??= `line ${n}: cannot parse ${JSON.stringify(line)}`; };
    let step = null;
    if (f[0] === 'set' && f.length === 4) step = { kind: 'set', key: f[1], value: value(f[2]), tags: tagList(f[3]) };
    else if (f[0] === 'get' && f.length === 4 && f[3] === 'miss') step = { kind: 'get', key: f[1], tags: tagList(f[2]), expect: undefined };
    else if (f[0] === 'get' && f.length === 5 && f[3] === 'hit') step = { kind: 'get', key: f[1], tags: tagList(f[2]), expect: value(f[4]) };
    else if (f[0] === 'delete' && f.length === 4 && ['deleted', 'absent'].includes(f[3])) {
      step = { kind: 'delete', key: f[1], tags: tagList(f[2]), deleted: f[3] === 'deleted' };
    } else if (f[0] === 'invalidate' && f.length === 2) step = { kind: 'invalidate', tags: tagList(f[1]) };
    else if (f[0] === 'invalidate_all' && f.length === 1) step = { kind: 'invalidate_all' };
    else if (f[0] === 'get_or_compute' && f.length === 6 && ['ran', 'cached'].includes(f[5])) {
      step = { kind: 'get_or_compute', key: f[1], tags: tagList(f[2]), computed: value(f[3]), expect: value(f[4]), ran: f[5] === 'ran' };
    } else if (['set', 'get', 'delete', 'invalidate', 'invalidate_all', 'get_or_compute'].includes(f[0])) {
      bad();
      return;
    } else {
      scenario.unsupported ??= `line ${n}: step \`${f[0]}\` is not supported by the Node runner`;
      return;
    }
    if (Object.values(step).some((v) => v === null)) {
      bad();
      return;
    }
    scenario.steps.push({ line: n, text: line, step });
  });
  return scenarios;
}

function runScenario(scenario) {
  const cache = open(scenario.name);
  hooks.take();
  control.violations = [];
  for (const { line, text, step } of scenario.steps) {
    const fail = (message) => new Failure(`${scenario.name} (line ${line}): \`${text}\`: ${message}`);
    try {
      switch (step.kind) {
        case 'set':
          cache.set(step.key, step.value, step.tags, DEFAULT);
          break;
        case 'get': {
          const got = cache.get(step.key, step.tags);
          const ok = step.expect === undefined ? got === undefined : sameBytes(got, step.expect);
          if (!ok) throw fail(`got ${show(got)}`);
          break;
        }
        case 'delete': {
          const deleted = cache.delete(step.key, step.tags);
          if (deleted !== step.deleted) throw fail(`deleted = ${deleted}`);
          break;
        }
        case 'invalidate':
          cache.invalidate(step.tags);
          break;
        case 'invalidate_all':
          cache.invalidateAll();
          break;
        case 'get_or_compute': {
          const { value, ran } = getOrCompute(cache, step.key, step.tags, step.computed);
          if (!sameBytes(value, step.expect) || ran !== step.ran) throw fail(`got ${show(value)}, ran = ${ran}`);
          break;
        }
        default:
          throw fail(`unknown step kind ${step.kind}`);
      }
    } catch (error) {
      if (error instanceof Failure) throw error;
      throw fail(describe(error));
    }
    // hooks.wit: one report per get-or-compute, none for anything else.
    const events = hooks.take();
    if (step.kind === 'get_or_compute') {
      const e = events[0];
      if (events.length !== 1) throw fail(`${events.length} hook reports, expected 1`);
      if (e.key !== step.key || JSON.stringify(e.tags) !== JSON.stringify(step.tags) || e.info.hit !== !step.ran) {
        throw fail(`wrong hook report: key ${e.key}, tags ${JSON.stringify(e.tags)}, hit ${e.info.hit}`);
      }
    } else if (events.length !== 0) {
      throw fail(`${events.length} hook reports for a step that is not a get-or-compute`);
    }
    if (control.violations.length > 0) throw fail(`broke the redis contract: ${control.violations.join('; ')}`);
  }
  cache[dispose]();
}

// ---------------------------------------------------------- contract tests

const ERROR_CASES = ['backend-unavailable', 'timeout', 'invalid-argument', 'backend', 'other'];

const contract = {
  // The point of issue 7's requirement: an error of the host's import comes
  // out of every cache function as the same case of `types.error`, and the
  // instance stays usable (no trap).
  'import errors surface as the same WIT error case'() {
    const cache = open('errors');
    cache.set('k', bytes('v'), ['t'], DEFAULT);
    const calls = {
      set: () => cache.set('k2', bytes('v'), ['t'], DEFAULT),
      get: () => cache.get('k', ['t']),
      delete: () => cache.delete('k', ['t']),
      invalidate: () => cache.invalidate(['t']),
      'invalidate-all': () => cache.invalidateAll(),
      'get-or-lock': () => cache.getOrLock('k', ['t'], lockOptions(1000n)),
    };
    for (const tag of ERROR_CASES) {
      for (const [name, call] of Object.entries(calls)) {
        const batches = control.batches;
        control.failure = { error: { tag, val: `injected ${tag} for ${name}` }, count: 1_000_000 };
        try {
          expectError(tag, `${name} while the import fails with \`${tag}\``, call);
        } finally {
          control.failure = null;
        }
        check(control.batches > batches, `${name}: the error did not come from the import`);
      }
    }
    hooks.take();
    check(sameBytes(cache.get('k', ['t']), bytes('v')), 'the instance no longer works after the import failed');
  },

  // redis.wit: "any other reply is an error the component reports as other",
  // and types.wit: "a host that answered a batch with the wrong number or the
  // wrong kind of replies" is `other`.
  'wrong replies from the import are the other case'() {
    const cache = open('wrong-replies');
    cache.set('k', bytes('v'), ['t'], DEFAULT);
    const tampers = {
      'a reply too many': (commands, replies) => [...replies, { tag: 'nil' }],
      'a reply too few': (commands, replies) => replies.slice(0, -1),
      'replies of the wrong kind': (commands, replies) => replies.map(() => ({ tag: 'int', val: 7n })),
    };
    for (const [what, tamper] of Object.entries(tampers)) {
      control.tamper = tamper;
      expectError('other', `get, when the host answers with ${what}`, () => cache.get('k', ['t']));
      check(control.tamper === null, `get with ${what}: the import was not called`);
    }
    control.tamper = null;
    check(sameBytes(cache.get('k', ['t']), bytes('v')), 'the instance no longer works after wrong replies');
  },

  'hooks report each get-or-compute as hooks.wit documents'() {
    const cache = open('hooks');
    const fn = { module: 'billing', typeName: 'Invoice', function: 'total' };
    const args = Uint8Array.of(0x82, 1, 2);
    const extra = { function: fn, arguments: args, method: true };
    hooks.take();

    control.failure = { error: { tag: 'timeout', val: 'injected' }, count: 1_000_000 };
    try {
      expectError('timeout', 'get-or-lock while the import times out', () => cache.getOrLock('k', ['a', 'b'], lockOptions(1000n, extra)));
    } finally {
      control.failure = null;
    }
    let events = hooks.take();
    check(events.length === 1, `a failed get-or-lock made ${events.length} reports, expected 1`);
    check(events[0].info.error?.tag === 'timeout' && !events[0].info.hit, () => `the failed get-or-lock's report: ${JSON.stringify(events[0].info, bigints)}`);

    const computed = bytes('12345');
    const miss = getOrCompute(cache, 'k', ['a', 'b'], computed, extra);
    check(miss.ran, 'the first get-or-compute did not compute');
    events = hooks.take();
    check(events.length === 1, `a computed get-or-compute made ${events.length} reports, expected 1`);
    let [e] = events;
    check(e.key === 'k' && JSON.stringify(e.tags) === '["a","b"]', () => `report key/tags: ${e.key} ${JSON.stringify(e.tags)}`);
    check(JSON.stringify(e.info.function) === JSON.stringify(fn), () => `report function: ${JSON.stringify(e.info.function)}`);
    check(sameBytes(e.info.arguments, args) && e.info.method === true, 'report arguments/method differ from the lock-options');
    check(!e.info.hit && e.info.lockFullMiss && !e.info.lockFullHit, () => `computed report flags: ${JSON.stringify(e.info, bigints)}`);
    check(e.info.serializedSize === 5n, () => `computed report serialized-size ${e.info.serializedSize}, expected 5`);
    check(e.info.error === undefined, () => `computed report has an error: ${JSON.stringify(e.info.error)}`);
    check(typeof e.info.elapsedNs === 'bigint' && e.info.elapsedNs >= e.info.decoratedElapsedNs, 'elapsed-ns < decorated-elapsed-ns');

    const hit = getOrCompute(cache, 'k', ['a', 'b'], bytes('other'), extra);
    check(!hit.ran && sameBytes(hit.value, computed), 'the second get-or-compute did not hit');
    events = hooks.take();
    check(events.length === 1, `a hit made ${events.length} reports, expected 1`);
    [e] = events;
    check(e.info.hit && e.info.lockFullHit && !e.info.lockFullMiss, () => `hit report flags: ${JSON.stringify(e.info, bigints)}`);
    check(e.info.decoratedElapsedNs === 0n && e.info.serializedSize === 5n, () => `hit report: ${JSON.stringify(e.info, bigints)}`);

    const lookup = cache.getOrLock('dropped', [], lockOptions(1000n));
    check(lookup.tag === 'locked', `get-or-lock on a new key: ${lookup.tag}`);
    lookup.val[dispose]();
    events = hooks.take();
    check(events.length === 0, `a ticket dropped without set-and-unlock made ${events.length} reports, expected none`);
  },

  // cache.wit: a hit is reported when the host finishes it, and bytes the
  // host cannot decode turn the call into a computation that overwrites
  // them, reported once as a miss with the codec error (as natively).
  'a hit is reported by found.finish; undecodable bytes are recomputed'() {
    const cache = open('found');
    cache.set('k', bytes('not what the host expects'), ['t'], DEFAULT);
    hooks.take();
    const dropped = cache.getOrLock('k', ['t'], lockOptions(1000n));
    check(dropped.tag === 'hit', `get-or-lock of a stored entry: ${dropped.tag}`);
    dropped.val.found[dispose]();
    check(hooks.take().length === 0, 'a found dropped unfinished was reported');

    const lookup = cache.getOrLock('k', ['t'], lockOptions(1000n));
    check(lookup.tag === 'hit', `get-or-lock of a stored entry: ${lookup.tag}`);
    check(hooks.take().length === 0, 'get-or-lock reported the hit before the host decoded it');
    const ticket = Found.undecodable(lookup.val.found, 'not JSON');
    check(!ticket.holdsLock(), 'the ticket of an undecodable hit holds a lock');
    cache.setAndUnlock(ticket, bytes('"json"'), DEFAULT);
    const events = hooks.take();
    check(events.length === 1, `an undecodable hit made ${events.length} reports, expected 1`);
    const [e] = events;
    check(!e.info.hit && e.info.error?.tag === 'other' && e.info.error.val.startsWith('codec: ') && e.info.error.val.includes('not JSON'),
      () => `the undecodable hit's report: ${JSON.stringify(e.info, bigints)}`);
    check(sameBytes(cache.get('k', ['t']), bytes('"json"')), 'set-and-unlock after undecodable did not overwrite the bytes');

    const hit = getOrCompute(cache, 'k', ['t'], bytes('other'));
    check(!hit.ran && sameBytes(hit.value, bytes('"json"')), 'the overwritten entry did not hit');
    const finished = hooks.take();
    check(finished.length === 1 && finished[0].info.hit, `a finished hit made ${finished.length} reports`);
  },

  'the stampede lock: held, timed out, released by dropping the ticket'() {
    const cache = open('lock');
    const holder = cache.getOrLock('k', ['t'], lockOptions(60_000n));
    check(holder.tag === 'locked' && holder.val.holdsLock(), `first get-or-lock: ${holder.tag}`);
    check(typeof holder.val.storageKey() === 'string' && holder.val.storageKey().length > 0, 'ticket.storage-key is empty');

    // Another caller waits up to its lock-timeout-ms for the holder (in
    // BLPOP, not in a busy loop), then computes without the lock.
    const blpops = control.commands.blpop ?? 0;
    const waiter = cache.getOrLock('k', ['t'], lockOptions(50n));
    check(waiter.tag === 'miss' && !waiter.val.holdsLock(), `get-or-lock while another holds the lock: ${waiter.tag}`);
    const stats = waiter.val.stats();
    check(stats.waitingMs >= 40n && stats.waitingMs < 5000n, `waiting-ms ${stats.waitingMs} after waiting a 50 ms lock timeout`);
    check(!stats.fullHit && stats.fullMiss, () => `waiter stats ${JSON.stringify(stats, bigints)}`);
    const waits = (control.commands.blpop ?? 0) - blpops;
    check(waits >= 1 && waits <= 3, `the waiter sent ${waits} BLPOPs to wait 50 ms`);
    check(holder.val.storageKey() === waiter.val.storageKey(), 'two tickets of one key and tags name different storage keys');

    // Dropping the holder's ticket releases the lock: the next caller gets
    // it at once instead of waiting up to its lock-timeout-ms.
    holder.val[dispose]();
    const blpopsBeforeNext = control.commands.blpop ?? 0;
    const next = cache.getOrLock('k', ['t'], lockOptions(3000n));
    check(next.tag === 'locked', `get-or-lock after the holder dropped its ticket: ${next.tag}`);
    // A held lock would have made it wait (a BLPOP) first; its wait, in ms, is no proof on a busy machine.
    check((control.commands.blpop ?? 0) === blpopsBeforeNext, `waited (BLPOP) for a lock its holder released; waiting-ms ${next.val.stats().waitingMs}`);

    // A miss ticket still stores its value.
    cache.setAndUnlock(waiter.val, bytes('from-the-waiter'), DEFAULT);
    check(sameBytes(cache.get('k', ['t']), bytes('from-the-waiter')), 'set-and-unlock of a miss ticket stored nothing');
    next.val[dispose]();
    const after = cache.getOrLock('k', ['t'], lockOptions(3000n));
    check(after.tag === 'hit' && sameBytes(after.val.value, bytes('from-the-waiter')), `get-or-lock after set-and-unlock: ${after.tag}`);
    after.val.found[dispose]();
    hooks.take();
  },

  // Two instances (two processes, for Redis): the first holds the lock; the
  // second waits in BLPOP, during which the first stores its value (or gives
  // up); the second must be woken at once, not at its BLPOP timeout.
  'a waiter is woken by set-and-unlock and reuses the value'() {
    const ns = namespace('wake-value');
    const a = first.Cache.open({ namespace: ns, disabled: false, inLocalMemory: false });
    const b = second.Cache.open({ namespace: ns, disabled: false, inLocalMemory: false });
    const holder = a.getOrLock('k', ['t'], lockOptions(60_000n));
    check(holder.tag === 'locked', `first get-or-lock: ${holder.tag}`);
    let called = false;
    control.duringBlpop = () => {
      called = true;
      a.setAndUnlock(holder.val, bytes('computed-by-a'), DEFAULT);
    };
    hooks.take();
    const woken = { ...control.blpops };
    const waiter = b.getOrLock('k', ['t'], lockOptions(5000n));
    check(called, 'the second instance did not wait in BLPOP for the held lock');
    check(waiter.tag === 'hit' && sameBytes(waiter.val.value, bytes('computed-by-a')), () => `the woken waiter got \`${waiter.tag}\`, expected the holder's value`);
    const { stats } = waiter.val;
    second.Found.finish(waiter.val.found);
    check(!stats.fullHit && !stats.fullMiss, () => `woken waiter stats ${JSON.stringify(stats, bigints)} (neither flag: another caller computed it)`);
    // Woken by the release's push: its one BLPOP was answered, not left to run out.
    check(control.blpops.woken === woken.woken + 1 && control.blpops.timedOut === woken.timedOut,
      () => `the waiter was not woken by the release: BLPOPs ${JSON.stringify(control.blpops)} (before ${JSON.stringify(woken)}), waiting-ms ${stats.waitingMs}`);
    const events = hooks.take().filter((e) => e.info.hit);
    check(events.length === 1 && !events[0].info.lockFullHit && !events[0].info.lockFullMiss, 'the woken hit was not reported as such');
    for (const key of control.keys().filter((k) => control.kind(k) === 'list')) {
      check(control.pttl(key) !== undefined, `the list ${key} (a wake-up queue?) never expires`);
    }
  },

  'a waiter is woken when the holder drops its ticket, and takes the lock'() {
    const ns = namespace('wake-drop');
    const a = first.Cache.open({ namespace: ns, disabled: false, inLocalMemory: false });
    const b = second.Cache.open({ namespace: ns, disabled: false, inLocalMemory: false });
    const holder = a.getOrLock('k', [], lockOptions(60_000n));
    check(holder.tag === 'locked', `first get-or-lock: ${holder.tag}`);
    let called = false;
    control.duringBlpop = () => {
      called = true;
      holder.val[dispose]();
    };
    const woken = { ...control.blpops };
    const waiter = b.getOrLock('k', [], lockOptions(5000n));
    check(called, 'the second instance did not wait in BLPOP for the held lock');
    check(waiter.tag === 'locked', `the woken waiter got \`${waiter.tag}\`, expected the lock`);
    check(control.blpops.woken === woken.woken + 1 && control.blpops.timedOut === woken.timedOut,
      () => `the waiter was not woken by the drop: BLPOPs ${JSON.stringify(control.blpops)} (before ${JSON.stringify(woken)}), waiting-ms ${waiter.val.stats().waitingMs}`);
    waiter.val[dispose]();
    hooks.take();
  },

  'the lock expires after lock-timeout-ms even if never released'() {
    const cache = open('lock-expiry');
    const holder = cache.getOrLock('k', [], lockOptions(30n));
    check(holder.tag === 'locked', `first get-or-lock: ${holder.tag}`);
    // The holder neither stores nor drops; its lock lives 30 ms. A caller
    // willing to wait 5 s must get the lock once it expired, well before 5 s.
    const next = cache.getOrLock('k', [], lockOptions(5000n));
    check(next.tag === 'locked', `get-or-lock after the holder's lock expired: ${next.tag}`);
    check(next.val.stats().waitingMs < 5000n, `waited ${next.val.stats().waitingMs} ms`);
    next.val[dispose]();
    holder.val[dispose]();
    hooks.take();
  },

  'lifetimes become PX expiries'() {
    const cache = open('lifetimes', { defaultLifetime: 60n });
    let keys = 0;
    const ttlOf = (lifetime) => {
      keys += 1;
      const lookup = cache.getOrLock(`k${keys}`, ['t'], lockOptions(1000n));
      check(lookup.tag === 'locked', `get-or-lock: ${lookup.tag}`);
      const key = lookup.val.storageKey();
      cache.setAndUnlock(lookup.val, bytes('v'), lifetime);
      return control.pttl(key);
    };
    const seconds = ttlOf({ tag: 'seconds', val: 100n });
    check(seconds > 99_000 && seconds <= 100_000, `seconds(100) left a TTL of ${seconds} ms`);
    const byDefault = ttlOf(DEFAULT);
    check(byDefault > 59_000 && byDefault <= 60_000, `default (60 s) left a TTL of ${byDefault} ms`);
    check(ttlOf({ tag: 'forever' }) === undefined, 'forever left a TTL');
    check(ttlOf({ tag: 'seconds', val: 0n }) === undefined, 'seconds(0) left a TTL');
    hooks.take();
  },

  'lifetime-for-tags expires the tag keys, not the entry'() {
    const cache = open('tag-lifetime', { lifetimeForTags: 100n });
    const before = new Set(control.keys());
    const lookup = cache.getOrLock('k', ['t1', 't2'], lockOptions(1000n));
    check(lookup.tag === 'locked', `get-or-lock: ${lookup.tag}`);
    const entry = lookup.val.storageKey();
    cache.setAndUnlock(lookup.val, bytes('v'), { tag: 'forever' });
    hooks.take();
    // New string keys besides the entry: the tag values (lists are the
    // lock's wake-up queues).
    const added = control.keys().filter((key) => !before.has(key) && key !== entry && control.kind(key) === 'string');
    check(control.pttl(entry) === undefined, `the entry stored forever has a TTL of ${control.pttl(entry)} ms`);
    check(added.length >= 2, `${added.length} new keys besides the entry, expected one per tag at least`);
    for (const key of added) {
      const ttl = control.pttl(key);
      check(ttl !== undefined && ttl > 99_000 && ttl <= 100_000, `key ${key} (a tag's?) has a TTL of ${ttl} ms, expected 100 s`);
    }
  },

  'max-value-size is invalid-argument'() {
    const cache = open('max-size', { maxValueSize: 4n });
    cache.set('k', bytes('1234'), [], DEFAULT);
    expectError('invalid-argument', 'set of 5 bytes with max-value-size 4', () => cache.set('k', bytes('12345'), [], DEFAULT));
    check(sameBytes(cache.get('k', []), bytes('1234')), 'the refused set changed the entry');
    const lookup = cache.getOrLock('big', [], lockOptions(1000n));
    check(lookup.tag === 'locked', `get-or-lock: ${lookup.tag}`);
    expectError('invalid-argument', 'set-and-unlock of 5 bytes with max-value-size 4', () => cache.setAndUnlock(lookup.val, bytes('12345'), DEFAULT));
    hooks.take();
    // The ticket was consumed and its lock released: the next caller locks.
    const blpopsBeforeNext = control.commands.blpop ?? 0;
    const next = cache.getOrLock('big', [], lockOptions(3000n));
    check(next.tag === 'locked', `get-or-lock after a refused set-and-unlock: ${next.tag}`);
    check((control.commands.blpop ?? 0) === blpopsBeforeNext, `waited (BLPOP) for the lock of a consumed ticket; waiting-ms ${next.val.stats().waitingMs}`);
    next.val[dispose]();
  },

  'a disabled cache never calls the import'() {
    const cache = open('disabled', { disabled: true });
    const batches = control.batches;
    cache.set('k', bytes('v'), ['t'], DEFAULT);
    check(cache.get('k', ['t']) === undefined, 'a disabled cache hit');
    cache.delete('k', ['t']);
    cache.invalidate(['t']);
    cache.invalidateAll();
    const computed = getOrCompute(cache, 'k', ['t'], bytes('v'));
    check(computed.ran, 'a disabled cache did not compute');
    hooks.take();
    check(control.batches === batches, `a disabled cache called redis.execute ${control.batches - batches} times`);
  },

  'in-local-memory caches never call the import and share nothing'() {
    const a = open('local', { inLocalMemory: true });
    const batches = control.batches;
    a.set('k', bytes('v'), ['t'], DEFAULT);
    check(sameBytes(a.get('k', ['t']), bytes('v')), 'in-local-memory get missed');
    a.invalidate(['t']);
    check(a.get('k', ['t']) === undefined, 'in-local-memory invalidate did not invalidate');
    a.set('k', bytes('v'), ['t'], DEFAULT);
    const b = Cache.open({ namespace: 'shared-name', disabled: false, inLocalMemory: true });
    const c = Cache.open({ namespace: 'shared-name', disabled: false, inLocalMemory: true });
    b.set('k', bytes('v'), [], DEFAULT);
    check(c.get('k', []) === undefined, 'two in-local-memory caches shared an entry');
    check(control.batches === batches, `in-local-memory caches called redis.execute ${control.batches - batches} times`);
  },

  'two instances share the host store like two processes share a Redis'() {
    const ns = namespace('two-instances');
    const a = first.Cache.open({ namespace: ns, disabled: false, inLocalMemory: false });
    const b = second.Cache.open({ namespace: ns, disabled: false, inLocalMemory: false });
    check(first.Cache !== second.Cache, 'the second import is not a second instance');
    a.set('k', bytes('v'), ['t'], DEFAULT);
    check(sameBytes(b.get('k', ['t']), bytes('v')), 'the second instance missed an entry set by the first');
    b.invalidate(['t']);
    check(a.get('k', ['t']) === undefined, 'the first instance still hits after the second invalidated the tag');
    const other = first.Cache.open({ namespace: `${ns}-other`, disabled: false, inLocalMemory: false });
    a.set('k', bytes('v'), ['t'], DEFAULT);
    check(other.get('k', ['t']) === undefined, 'another namespace saw the entry');
  },

  'an empty invalidate sends no command'() {
    const cache = open('empty-invalidate');
    cache.set('k', bytes('v'), ['t'], DEFAULT);
    const before = JSON.stringify(control.commands);
    cache.invalidate([]);
    check(JSON.stringify(control.commands) === before, 'invalidate([]) sent commands');
    check(sameBytes(cache.get('k', ['t']), bytes('v')), 'invalidate([]) invalidated something');
  },
};

function bigints(key, value) {
  return typeof value === 'bigint' ? value.toString() : value;
}

// -------------------------------------------------------------------- main

let table;
try {
  table = parseTable(readFileSync(options.table, 'utf8'));
} catch (error) {
  cannotRun(`${options.table}: ${error.message}`);
}
if (table.length < 10) cannotRun(`${options.table}: only ${table.length} scenarios, the table looks truncated`);

const tally = { passed: 0, failed: 0, skipped: 0 };
for (const scenario of table) {
  if (!selected(scenario.name)) continue;
  if (scenario.malformed) {
    tally.failed += 1;
    console.log(`FAIL scenario ${scenario.name}: ${scenario.malformed}`);
  } else if (scenario.unsupported) {
    tally.skipped += 1;
    console.log(`skip scenario ${scenario.name}: ${scenario.unsupported}`);
  } else {
    try {
      runScenario(scenario);
      tally.passed += 1;
      console.log(`ok   scenario ${scenario.name}`);
    } catch (error) {
      tally.failed += 1;
      console.log(`FAIL scenario ${error instanceof Failure ? error.message : `${scenario.name}: ${describe(error)}`}`);
    }
  }
}

const contractTally = { passed: 0, failed: 0 };
for (const [name, test] of Object.entries(contract)) {
  if (!selected(name)) continue;
  control.failure = null;
  control.tamper = null;
  control.duringBlpop = null;
  control.violations = [];
  const started = performance.now();
  try {
    test();
    check(control.violations.length === 0, () => `broke the redis contract: ${control.violations.join('; ')}`);
    contractTally.passed += 1;
    console.log(`ok   contract ${name} (${Math.round(performance.now() - started)} ms)`);
  } catch (error) {
    contractTally.failed += 1;
    console.log(`FAIL contract ${name}: ${error instanceof Failure ? error.message : describe(error)}`);
    if (!(error instanceof Failure) && error?.stack) console.log(error.stack);
  }
}

const served = Object.entries(control.commands).map(([name, n]) => `${name} ${n}`).join(', ');
console.log(`redis commands served: ${served || 'none'} (${control.batches} batches)`);
console.log(`scenarios: ${tally.passed} passed, ${tally.failed} failed, ${tally.skipped} skipped`);
console.log(`contract: ${contractTally.passed} passed, ${contractTally.failed} failed`);
process.exit(tally.failed + contractTally.failed === 0 ? 0 : 1);
