'use strict';
// Preloaded (node --expose-gc --require) into every server process of a bench system, so the
// connection-scale run can read memory after a full garbage collection in each: on SIGUSR2 the
// process collects (twice, so that what the first one freed by weak references goes too) and
// sends its memory usage to the bench over the IPC channel it was forked with. The same for
// every system, so their memory per connection is compared on live data alone.
process.on('SIGUSR2', () => {
  if (typeof global.gc !== 'function' || !process.send) return;
  global.gc();
  global.gc();
  const { rss, heapUsed, arrayBuffers } = process.memoryUsage();
  process.send({ type: 'bench-memory', rss, heapUsed, arrayBuffers });
});
