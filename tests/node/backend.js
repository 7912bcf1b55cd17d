// The `rtc:cache/redis@0.2.0` import of the rtc component, served either by a
// real Redis (after `control.useRedis(url)`, through the synchronous bridge of
// redis-bridge.js) or by an in-memory Map that answers like Redis. Written
// from the WIT documentation alone (wit/redis.wit, wit/types.wit), as a
// third-party host would.
//
// jco calls `execute` synchronously (Node 20 has no JSPI), so every command is
// served synchronously. The store is shared by every instance of the
// component that imports this file, as processes share a Redis.
//
// Errors: an import signals the WIT `err` case by throwing. jco 1.10.2 turns a
// thrown value that has an own `payload` property into `err(payload)`; any
// other `Error` it rethrows, which traps the component. So every failure here
// is a `RedisError`, whose `payload` is a `types.error` variant.
//
// Besides `execute`, the module exports `control`, which the test runner
// (run.mjs) uses to count calls, inject failures and wrong replies, and check
// the promises the WIT makes about the commands the component sends.

import { RedisBridge } from './redis-bridge.js';

/** A failure of `execute`: `payload` is the WIT `error` variant it becomes. */
export class RedisError extends Error {
  constructor(tag, message) {
    super(`${tag}: ${message}`);
    this.payload = { tag, val: message };
  }
}

const WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value';
const BLPOP_MAX_MS = 86_400_000n;

/** key -> { kind: 'string', value: Uint8Array } | { kind: 'list', items: Uint8Array[] },
 *  plus `expiresAt` (a `performance.now()` instant) when the key has a TTL. */
const store = new Map();

/** The real Redis behind `execute`, once `control.useRedis` chose one. */
let redis = null;

/** What the runner observes and injects; see the README next to this file. */
export const control = {
  /** Batches served (`execute` calls), failed ones included. */
  batches: 0,
  /** Commands received, by name (`get`, `mget`, `set`, ...). */
  commands: {},
  /** BLPOPs answered, by how: `woken` (an element was pushed: a wake-up),
   *  `timedOut` (nil: the wait ran out, or returned at once with
   *  `blpopWaits` false). */
  blpops: { woken: 0, timedOut: 0 },
  /** Breaches of the WIT's promises about the commands the component sends
   *  (a BLPOP sharing its batch, ...): strings, to be checked empty. */
  violations: [],
  /** When set, `{ error: {tag, val}, count }`: the next `count` batches fail
   *  with that error before running any command. */
  failure: null,
  /** When set, `(commands, replies) => replies`: rewrites the replies of the
   *  next batch (to test that the component rejects wrong replies). */
  tamper: null,
  /** When set, a function called once, by the next BLPOP that finds its
   *  list empty, before it waits: it stands for another client acting during
   *  the wait (it may call another instance of the component, whose RPUSH
   *  then answers the BLPOP). */
  duringBlpop: null,
  /** When false, BLPOP on an empty list returns nil at once instead of
   *  waiting its timeout. Nothing can push while this single-threaded host
   *  waits, so waiting only honours the timeout's meaning. */
  blpopWaits: true,

  /** Serves `execute` from the Redis at `url` (through a worker thread that
   *  owns the connection) instead of the in-memory Map, from now on. */
  useRedis(url) {
    redis = new RedisBridge(url);
    redis.raw([['PING']]);
  },
  /** Whether a real Redis serves `execute`. */
  get onRedis() {
    return redis !== null;
  },

  /** Forgets every key and resets the counters and injections. */
  reset() {
    if (redis) redis.raw([['FLUSHALL']]);
    store.clear();
    this.batches = 0;
    this.commands = {};
    this.blpops = { woken: 0, timedOut: 0 };
    this.violations = [];
    this.failure = null;
    this.tamper = null;
    this.duringBlpop = null;
    this.blpopWaits = true;
  },
  /** The number of keys currently alive. */
  size() {
    if (redis) return Number(redis.raw([['DBSIZE']])[0]);
    for (const key of [...store.keys()]) live(key);
    return store.size;
  },
  /** The keys currently alive. */
  keys() {
    if (redis) return redis.raw([['KEYS', '*']])[0];
    for (const key of [...store.keys()]) live(key);
    return [...store.keys()];
  },
  /** 'string', 'list', or `undefined` when there is no such key. */
  kind(key) {
    if (redis) {
      const type = redis.raw([['TYPE', key]])[0];
      return type === 'none' ? undefined : type;
    }
    return live(key)?.kind;
  },
  /** The milliseconds left before `key` expires, `undefined` without a TTL,
   *  `null` when there is no such key (like PTTL's -1 and -2). */
  pttl(key) {
    if (redis) {
      const ms = Number(redis.raw([['PTTL', key]])[0]);
      return ms === -2 ? null : ms === -1 ? undefined : ms;
    }
    const entry = live(key);
    if (!entry) return null;
    return entry.expiresAt === undefined ? undefined : Math.max(0, Math.ceil(entry.expiresAt - performance.now()));
  },
};

function live(key) {
  const entry = store.get(key);
  if (entry && entry.expiresAt !== undefined && entry.expiresAt <= performance.now()) {
    store.delete(key);
    return undefined;
  }
  return entry;
}

function string(key) {
  const entry = live(key);
  if (entry && entry.kind !== 'string') throw new RedisError('backend', WRONGTYPE);
  return entry;
}

function list(key) {
  const entry = live(key);
  if (entry && entry.kind !== 'list') throw new RedisError('backend', WRONGTYPE);
  return entry;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function keys(list, command) {
  if (!Array.isArray(list) || list.length === 0) {
    throw new RedisError('invalid-argument', `${command} needs at least one key`);
  }
  return list;
}

const I64_MAX = 2n ** 63n - 1n;

/** A duration of PX or PEXPIRE: the WIT promises at least 1 (this host
 *  refuses 0 as invalid-argument); above that, Redis's own limits apply and
 *  come back as Redis's errors: a number it cannot parse as a signed 64-bit
 *  integer, or an expiry instant past the largest it can store. */
function expiry(ms, command) {
  if (typeof ms !== 'bigint' || ms < 1n) throw new RedisError('invalid-argument', `${command} must be at least 1 ms, got ${ms}`);
  if (ms > I64_MAX) throw new RedisError('backend', 'ERR value is not an integer or out of range');
  if (ms > I64_MAX - BigInt(Date.now())) {
    throw new RedisError('backend', `ERR invalid expire time in '${command.split(' ')[0].toLowerCase()}' command`);
  }
  return Number(ms);
}

// A private cell to block on: Atomics.wait is the synchronous sleep of Node's
// main thread, which is allowed to block (unlike a browser's).
const cell = new Int32Array(new SharedArrayBuffer(4));

function run(command) {
  const { tag, val } = command;
  switch (tag) {
    case 'get': {
      const entry = string(val);
      return entry ? { tag: 'bytes', val: entry.value.slice() } : { tag: 'nil' };
    }
    case 'mget':
      return {
        tag: 'array',
        val: keys(val, 'MGET').map((key) => {
          const entry = live(key);
          return entry && entry.kind === 'string' ? entry.value.slice() : undefined;
        }),
      };
    case 'set': {
      const { key, value, expireMs, nx } = val;
      const ttl = expireMs === undefined ? undefined : expiry(expireMs, 'SET PX');
      if (nx && live(key)) return { tag: 'nil' };
      // Like Redis, SET replaces a key of any type and drops its old TTL.
      const entry = { kind: 'string', value: Uint8Array.from(value) };
      if (ttl !== undefined) entry.expiresAt = performance.now() + ttl;
      store.set(key, entry);
      return { tag: 'ok' };
    }
    case 'del': {
      let removed = 0n;
      for (const key of keys(val, 'DEL')) if (live(key) && store.delete(key)) removed += 1n;
      return { tag: 'int', val: removed };
    }
    case 'del-if-eq': {
      const entry = string(val.key);
      if (entry && equal(entry.value, val.value)) {
        store.delete(val.key);
        return { tag: 'int', val: 1n };
      }
      return { tag: 'int', val: 0n };
    }
    case 'rpush': {
      let entry = list(val.key);
      if (!entry) store.set(val.key, (entry = { kind: 'list', items: [] }));
      entry.items.push(Uint8Array.from(val.value));
      return { tag: 'int', val: BigInt(entry.items.length) };
    }
    case 'pexpire': {
      const ms = expiry(val.ms, 'PEXPIRE');
      const entry = live(val.key);
      if (!entry) return { tag: 'int', val: 0n };
      entry.expiresAt = performance.now() + ms;
      return { tag: 'int', val: 1n };
    }
    case 'pttl': {
      const entry = live(val);
      if (!entry) return { tag: 'int', val: -2n };
      if (entry.expiresAt === undefined || entry.expiresAt === null) return { tag: 'int', val: -1n };
      return { tag: 'int', val: BigInt(Math.max(0, Math.round(entry.expiresAt - performance.now()))) };
    }
    case 'blpop': {
      const { key, timeoutMs } = val;
      if (typeof timeoutMs !== 'bigint' || timeoutMs < 1n || timeoutMs > BLPOP_MAX_MS) {
        throw new RedisError('invalid-argument', `BLPOP timeout must be from 1 to ${BLPOP_MAX_MS} ms, got ${timeoutMs}`);
      }
      const entry = list(key);
      if (entry) {
        const item = entry.items.shift();
        if (entry.items.length === 0) store.delete(key); // Redis drops empty lists
        return { tag: 'bytes', val: item };
      }
      if (control.duringBlpop) {
        // Stands for another client acting while this one waits: it may
        // push to the list, which then answers this BLPOP.
        const act = control.duringBlpop;
        control.duringBlpop = null;
        act();
        const pushed = list(key);
        if (pushed) {
          const item = pushed.items.shift();
          if (pushed.items.length === 0) store.delete(key);
          return { tag: 'bytes', val: item };
        }
      }
      // Single-threaded: no other client can push while we wait, so the
      // answer after the timeout is known now; waiting keeps its meaning.
      if (control.blpopWaits) Atomics.wait(cell, 0, 0, Number(timeoutMs));
      return { tag: 'nil' };
    }
    default:
      throw new RedisError('invalid-argument', `unknown command ${JSON.stringify(tag)}`);
  }
}

/** Runs a batch on the real Redis. `control.duringBlpop` acts just before a
 *  BLPOP that would wait (this thread is blocked during the wait itself), so
 *  what it pushes answers the BLPOP as it would from another client. */
function onRedis(commands) {
  if (control.duringBlpop && commands.length === 1 && commands[0].tag === 'blpop') {
    const [length] = redis.raw([['EXISTS', commands[0].val.key]]);
    if (Number(length) === 0) {
      const act = control.duringBlpop;
      control.duringBlpop = null;
      act();
    }
  }
  const { replies, error } = redis.execute(commands);
  if (error) throw new RedisError(error.tag, error.val);
  return replies;
}

/**
 * `execute: func(commands: list<command>) -> result<list<reply>, error>`:
 * runs the batch in order and returns one reply per command. Like a Redis
 * pipeline, the commands before a failing one stay applied.
 */
export function execute(commands) {
  control.batches += 1;
  for (const { tag } of commands) control.commands[tag] = (control.commands[tag] ?? 0) + 1;
  if (commands.length > 1 && commands.some((c) => c.tag === 'blpop')) {
    control.violations.push(`BLPOP sent in a batch of ${commands.length} commands (wit/redis.wit: always alone)`);
  }
  if (control.failure && control.failure.count > 0) {
    control.failure.count -= 1;
    const { tag, val } = control.failure.error;
    throw new RedisError(tag, val);
  }
  let replies = redis ? onRedis(commands) : commands.map(run);
  commands.forEach(({ tag }, i) => {
    if (tag === 'blpop') control.blpops[replies[i]?.tag === 'nil' ? 'timedOut' : 'woken'] += 1;
  });
  if (control.tamper) {
    const tamper = control.tamper;
    control.tamper = null;
    replies = tamper(commands, replies);
  }
  return replies;
}
