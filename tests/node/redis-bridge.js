// A synchronous Redis client for the main thread of Node, over a worker
// thread that owns the connection: the recipe wit/README.md gives for hosts
// whose imports must be synchronous.
//
// Why: jco calls the component's `execute` import synchronously (Node 20 has
// no JSPI to suspend WebAssembly on a promise), but every Node Redis client is
// asynchronous. So the main thread posts the batch to a worker
// (redis-worker.js), which runs it with ioredis, posts the replies on a
// MessagePort and bumps a counter in a SharedArrayBuffer; meanwhile the main
// thread sleeps in `Atomics.wait` on that counter and, once woken, takes the
// replies with `receiveMessageOnPort`, which reads a port synchronously.
//
// The cost is a thread hop each way (tens of microseconds) on top of the
// round trip. While a batch runs the main thread is blocked, BLPOP's wait
// included: run one component instance per thread that may wait on a lock.

import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';

/** A connection to one Redis, usable synchronously from the main thread. */
export class RedisBridge {
  /**
   * @param {string} url `redis://host:port[/db]`
   * @param {{ timeoutMs?: number, connectTimeoutMs?: number }} options
   *   `timeoutMs`: how long a batch may take (BLPOP's own wait is added to
   *   it) before `execute` gives up with the `timeout` error.
   */
  constructor(url, { timeoutMs = 5000, connectTimeoutMs = 5000 } = {}) {
    this.timeoutMs = timeoutMs;
    this.signal = new Int32Array(new SharedArrayBuffer(4));
    const { port1, port2 } = new MessageChannel();
    this.replies = port1;
    this.worker = new Worker(new URL('./redis-worker.js', import.meta.url), {
      workerData: { url, replies: port2, signal: this.signal.buffer, connectTimeoutMs },
      transferList: [port2],
    });
    // The bridge must not keep the process alive once the runner is done.
    this.worker.unref();
    this.next = 0;
  }

  /** Posts `message` and blocks until the worker answers it or `waitMs`
   *  passes. Answers to earlier requests that timed out are dropped. */
  request(message, waitMs) {
    const id = ++this.next;
    this.worker.postMessage({ id, ...message });
    const deadline = performance.now() + waitMs;
    for (;;) {
      // Read the counter before the port: a reply posted after this read
      // changes the counter, so the wait below returns at once.
      const seen = Atomics.load(this.signal, 0);
      const received = receiveMessageOnPort(this.replies);
      if (received) {
        if (received.message.id === id) return received.message;
        continue;
      }
      const left = deadline - performance.now();
      if (left <= 0) return { id, error: { tag: 'timeout', val: `Redis did not answer within ${waitMs} ms` } };
      Atomics.wait(this.signal, 0, seen, left);
    }
  }

  /** Runs a batch of WIT commands; `{ replies }` (WIT replies) or `{ error }`
   *  (a WIT `error` variant). */
  execute(commands) {
    const blpop = commands.find((c) => c.tag === 'blpop');
    const wait = this.timeoutMs + (blpop ? Number(blpop.val.timeoutMs) : 0);
    return this.request({ batch: commands }, wait);
  }

  /** Runs raw Redis commands (`[['TYPE', key], ...]`) and returns their
   *  replies, bulk strings as text; throws on an error. */
  raw(commands) {
    const { replies, error } = this.request({ raw: commands }, this.timeoutMs);
    if (error) throw new Error(`${error.tag}: ${error.val}`);
    return replies;
  }
}
