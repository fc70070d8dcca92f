'use strict';
// Preloaded (node --expose-gc --require) into every server process of a bench system, so the
// connection-scale run can read memory after a full garbage collection in each: on SIGUSR2 the
// process collects (twice, so that what the first one freed by weak references goes too).
// The same for every system, so their memory per connection is compared on live data alone.
process.on('SIGUSR2', () => {
  if (typeof global.gc !== 'function') return;
  global.gc();
  global.gc();
});
