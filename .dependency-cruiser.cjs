/**
 * The layering of Fanout's source (docs/architecture.md, ../shared/STYLE.md): higher floors use
 * lower ones, never the reverse, and no import circle at all, type-only imports included.
 * `npm test` runs `npm run lint:deps` right after the build.
 *
 *   src/cli → src/app.ts, src/index.ts → src/ingest → src/channels, src/echo, src/http → src/node
 *     → src/transport, src/bus, src/history, src/hooks, src/webhooks, src/metrics.ts → src/config, src/haproxy
 *     → src/protocol, src/errors.ts, src/logger.ts
 *   client/ (the SDK) → client/, src/protocol/ only
 */
const above = (...folders) => `^src/(${folders.join('|')})`;

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import circle ties its files into one unit: no change stays local. Type-only imports count.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'protocol-is-the-floor',
      severity: 'error',
      comment: 'src/protocol is shared with the browser SDK: it imports nothing else of the project.',
      from: { path: '^src/protocol/' },
      to: { path: '^(src/(?!protocol/)|client/|bench/|test/|harness/)' },
    },
    {
      name: 'errors-and-logger-are-ground',
      severity: 'error',
      from: { path: '^src/(errors|logger)\\.ts$' },
      to: { path: '^(src/(?!protocol/)|client/|bench/|test/|harness/)' },
    },
    {
      name: 'config-reads-no-runtime',
      severity: 'error',
      comment: 'Config is parsed before anything runs: it may use protocol, errors and the HAProxy generator, nothing that runs.',
      from: { path: '^src/(config|haproxy)/' },
      to: { path: `${above('node', 'channels', 'echo', 'http', 'ingest', 'transport', 'bus', 'history', 'hooks', 'cli')}|^src/(app|index|metrics)\\.ts$` },
    },
    {
      name: 'adapters-do-not-reach-up',
      severity: 'error',
      comment: 'Bus adapters, stores, the transport, the back-end hooks and metrics take narrow interfaces they declare; they never import the node or a feature.',
      from: { path: '^src/(bus|history|transport|hooks|webhooks)/|^src/metrics\\.ts$' },
      to: { path: `${above('node', 'channels', 'echo', 'http', 'ingest', 'cli')}|^src/(app|index)\\.ts$` },
    },
    {
      name: 'hooks-speak-http-only',
      severity: 'error',
      comment: 'src/hooks turns calls into verdicts; it knows no socket, bus or store (the gate and the channel endpoint act on its verdicts).',
      from: { path: '^src/hooks/' },
      to: { path: `${above('transport', 'bus', 'history')}|^src/metrics\\.ts$` },
    },
    {
      name: 'core-knows-no-feature',
      severity: 'error',
      comment: 'The node core does not know echo, channels or the HTTP routes: the composition root registers them.',
      from: { path: '^src/node/' },
      to: { path: `${above('channels', 'echo', 'http', 'ingest', 'cli')}|^src/(app|index)\\.ts$` },
    },
    {
      name: 'features-stay-beside-each-other',
      severity: 'error',
      comment: 'Features are registered by src/app.ts; they do not import it, the CLI, or each other (the HTTP API may use the channel service).',
      from: { path: '^src/(channels|echo|http|ingest)/' },
      to: { path: `${above('cli')}|^src/(app|index)\\.ts$` },
    },
    {
      name: 'channels-and-echo-are-separate',
      severity: 'error',
      from: { path: '^src/(channels|echo)/' },
      to: { path: '^src/(echo|http|ingest)/', pathNot: '^src/$1/' },
    },
    {
      name: 'echo-knows-no-channels',
      severity: 'error',
      from: { path: '^src/echo/' },
      to: { path: '^src/channels/' },
    },
    {
      name: 'product-does-not-import-tools',
      severity: 'error',
      comment: 'The product (src, client) never imports the benchmark or the tests: a production install has neither.',
      from: { path: '^(src|client)/' },
      to: { path: '^(bench|test|harness)/' },
    },
    {
      name: 'sdk-imports-protocol-only',
      severity: 'error',
      comment: 'The browser SDK loads client/ and src/protocol/ only.',
      from: { path: '^client/' },
      to: { path: '^src/(?!protocol/)' },
    },
    {
      name: 'harness-is-shared',
      severity: 'error',
      comment: 'harness/ serves the tests and the benchmark alike: it imports neither.',
      from: { path: '^harness/' },
      to: { path: '^(bench|test)/' },
    },
    {
      name: 'tests-do-not-import-the-bench',
      severity: 'error',
      comment: 'Tests and the benchmark share harness/; only the bench\'s own tests import bench/.',
      from: { path: '^test/', pathNot: '^test/(integration/bench-smoke|unit/bench-loadgen)\\.test\\.ts$' },
      to: { path: '^bench/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
