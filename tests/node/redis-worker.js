// The thread that owns the Redis connection of the Node host (see
// redis-bridge.js for the main thread's side and why it exists).
//
// It receives one request at a time from the main thread, `{ id, batch }`
// (WIT commands, as jco gives them to `execute`) or `{ id, raw }` (Redis
// commands as argument arrays, for the test runner's inspection), runs it on
// Redis with ioredis, posts `{ id, replies }` or `{ id, error }` on its reply
// port, then bumps the shared counter and wakes the main thread, in that
// order: the message is in the port's queue before the main thread wakes.

import { parentPort, workerData } from 'node:worker_threads';
import Redis from 'ioredis';

const { url, replies, signal: cell, connectTimeoutMs } = workerData;
const signal = new Int32Array(cell);

// The compare-and-delete that wit/redis.wit specifies for `del-if-eq`.
const DEL_IF_EQ = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

const client = new Redis(url, {
  connectTimeout: connectTimeoutMs,
  // Fail a command at once when the connection is down, as the WIT's
  // `backend-unavailable` expects, instead of retrying it 20 times.
  maxRetriesPerRequest: 0,
  // Reconnect in the background; commands sent meanwhile fail fast.
  enableOfflineQueue: false,
  retryStrategy: (times) => Math.min(times * 50, 1000),
  lazyConnect: false,
});
// ioredis emits 'error' for every failed (re)connection; a request finds out
// through its own failure, so the events need no handler beyond this.
client.on('error', () => {});

const ready = new Promise((resolve) => {
  if (client.status === 'ready') resolve();
  client.once('ready', resolve);
  client.once('end', resolve);
  setTimeout(resolve, connectTimeoutMs).unref();
});

const invalid = (message) => Object.assign(new Error(message), { wit: 'invalid-argument' });

/** A duration the WIT promises to be at least 1 ms (Redis would read 0 as
 *  an error for PX and as "delete now" for PEXPIRE). */
function ms(value, command) {
  if (typeof value !== 'bigint' || value < 1n) throw invalid(`${command} must be at least 1 ms, got ${value}`);
  return value.toString();
}

/** The Redis arguments of one WIT command. */
function args({ tag, val }) {
  switch (tag) {
    case 'get':
      return ['GET', val];
    case 'mget':
      return ['MGET', ...val];
    case 'set': {
      const out = ['SET', val.key, Buffer.from(val.value)];
      if (val.expireMs !== undefined) out.push('PX', ms(val.expireMs, 'SET PX'));
      if (val.nx) out.push('NX');
      return out;
    }
    case 'del':
      return ['DEL', ...val];
    case 'del-if-eq':
      return ['EVAL', DEL_IF_EQ, '1', val.key, Buffer.from(val.value)];
    case 'rpush':
      return ['RPUSH', val.key, Buffer.from(val.value)];
    case 'pexpire':
      return ['PEXPIRE', val.key, ms(val.ms, 'PEXPIRE')];
    case 'pttl':
      return ['PTTL', val];
    case 'blpop':
      if (typeof val.timeoutMs !== 'bigint' || val.timeoutMs < 1n || val.timeoutMs > 86_400_000n) {
        throw invalid(`BLPOP timeout must be from 1 to 86400000 ms, got ${val.timeoutMs}`);
      }
      // Redis takes seconds, fractional since Redis 6.
      return ['BLPOP', val.key, (Number(val.timeoutMs) / 1000).toFixed(3)];
    default:
      throw invalid(`unknown command ${JSON.stringify(tag)}`);
  }
}

/** A copy into a buffer of its own: a Buffer may be a view of ioredis's
 *  pool, and posting a view would copy the whole pool to the main thread. */
const own = (buffer) => new Uint8Array(buffer);

/** The WIT reply of one command from ioredis's reply (bulk strings as Buffers). */
function reply(tag, value) {
  switch (tag) {
    case 'get':
      return value === null ? { tag: 'nil' } : { tag: 'bytes', val: own(value) };
    case 'mget':
      return { tag: 'array', val: value.map((item) => (item === null ? undefined : own(item))) };
    case 'set':
      return value === null ? { tag: 'nil' } : { tag: 'ok' };
    case 'blpop':
      // BLPOP answers [key, element]; the WIT wants the element only.
      return value === null ? { tag: 'nil' } : { tag: 'bytes', val: own(value[1]) };
    default:
      return { tag: 'int', val: BigInt(value) };
  }
}

/** The WIT error case of a failure. */
function failure(error) {
  const message = error?.message ?? String(error);
  if (error?.wit) return { tag: error.wit, val: message };
  // A reply error from Redis (WRONGTYPE, ...) is `backend`; anything about
  // the connection is `backend-unavailable`.
  if (error?.name === 'ReplyError') return { tag: 'backend', val: message };
  return { tag: 'backend-unavailable', val: message };
}

/** A raw reply with its bulk strings as text, for the runner's inspection. */
function text(value) {
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return Array.isArray(value) ? value.map(text) : value;
}

async function run(commands) {
  await ready;
  const pipeline = client.pipeline();
  for (const command of commands) pipeline.callBuffer(...command);
  const results = await pipeline.exec();
  // Like the native host: a failing command fails the whole batch.
  const failed = results.find(([error]) => error);
  if (failed) throw failed[0];
  return results.map(([, value]) => value);
}

parentPort.on('message', async ({ id, batch, raw }) => {
  let message;
  try {
    if (batch) {
      const values = await run(batch.map(args));
      message = { id, replies: batch.map((command, i) => reply(command.tag, values[i])) };
    } else {
      const values = await run(raw);
      message = { id, replies: values.map(text) };
    }
  } catch (error) {
    message = { id, error: failure(error) };
  }
  replies.postMessage(message);
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
});
