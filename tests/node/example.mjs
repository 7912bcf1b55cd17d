// The Node example of tests/node/README.md: the rtc component used from
// JavaScript, its Redis import served by backend.js. Run it after setup.sh:
//   node tests/node/example.mjs
import { cache } from './out/rtc_component.js';

const { Cache, Found } = cache;
const text = new TextEncoder();
const utf8 = new TextDecoder();
const dispose = Symbol.dispose ?? Symbol.for('dispose');

const users = Cache.open({
  namespace: 'example',
  defaultLifetime: 3600n, // u64 -> bigint; option<u64> -> bigint | undefined
  lifetimeForTags: undefined,
  disabled: false,
  inLocalMemory: false,
  maxValueSize: 1024n,
});

// set / get / invalidate: values are bytes (Uint8Array), a miss is undefined.
users.set('user:1', text.encode('Ada'), ['users', 'user:1'], { tag: 'default' });
console.log('get:', utf8.decode(users.get('user:1', ['users', 'user:1'])));
users.invalidate(['users']);
console.log('after invalidate:', users.get('user:1', ['users', 'user:1']));

// get-or-compute: get-or-lock, then set-and-unlock (or drop the ticket).
function getOrCompute(c, key, tags, compute) {
  const lookup = c.getOrLock(key, tags, {
    lockTimeoutMs: 5000n,
    function: { module: 'example', typeName: '', function: 'loadUser' },
    arguments: new Uint8Array(),
    method: false,
  });
  if (lookup.tag === 'hit') {
    // Decode lookup.val.value here; if it does not decode, instead call
    // Found.undecodable(lookup.val.found, reason) and compute with its ticket.
    Found.finish(lookup.val.found); // reports the hit to the hooks
    return lookup.val.value;
  }
  const ticket = lookup.val; // 'locked' or 'miss'
  let value;
  try {
    value = compute();
  } catch (error) {
    ticket[dispose](); // releases the lock and wakes a waiter
    throw error;
  }
  c.setAndUnlock(ticket, value, { tag: 'seconds', val: 60n });
  return value;
}
let computed = 0;
const load = () => { computed += 1; return text.encode('Grace'); };
getOrCompute(users, 'user:2', ['users'], load);
const again = getOrCompute(users, 'user:2', ['users'], load);
console.log('get-or-compute:', utf8.decode(again), `(computed ${computed} time)`);

// Errors come out as a ComponentError whose payload is the WIT `error` variant.
try {
  users.set('big', new Uint8Array(2048), [], { tag: 'forever' });
} catch (error) {
  console.log('error:', error.payload.tag);
}
