// The `rtc:cache/hooks@0.2.0` import of the rtc component: it records every
// report, for the runner (run.mjs) to check. Written from wit/hooks.wit alone.
//
// `report` runs inside the cache call that reports it and cannot fail, so it
// only stores the event (a `hook-event`: { key, tags, info: cache-info }, with
// jco's mapping: camelCase fields, u64 as bigint, `option` as undefined).

/** Every report received since the last `take()`. */
export const events = [];

/** `report: func(event: hook-event)`. */
export function report(event) {
  events.push(event);
}

/** Returns the reports received so far and forgets them. */
export function take() {
  return events.splice(0, events.length);
}
