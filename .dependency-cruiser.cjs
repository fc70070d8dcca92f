/**
 * The layering of Fanout's source (docs/architecture.md draws it): higher floors use lower ones,
 * never the reverse, and no import circle at all, type-only imports included. `npm test` runs
 * `npm run lint:deps` right after the build, and test/unit/layer-rules.test.ts writes a probe
 * import for every rule below and checks that the rule still catches it.
 *
 *   src/cli → src/app.ts, src/index.ts (src/app.ts alone imports src/metrics.ts, the registry)
 *     → features: src/ingest, src/channels, src/echo, src/http, src/pusher (beside each other; the
 *       others reach the channels only through src/channels/index.ts)
 *     → src/node (the core) → src/transport, src/hooks, src/webhooks
 *     → src/brokers/*.ts (the factories) → src/brokers/<broker>/ (one room per broker)
 *     → src/stores (Bus and store contracts, kits shared by several brokers), src/outbound (calls to
 *       the application's back end, for hooks and webhooks)
 *     → src/config, src/haproxy → src/protocol, src/errors.ts, src/logger.ts
 *   client/ (the SDK) → client/, src/protocol/ only
 * Each folder declares its own Prometheus families in a metrics module beside what they measure
 * (`metrics.ts` or `<part>-metrics.ts`); only the composition root imports them.
 */
const folders = (...names) => `^src/(${names.join('|')})/`;
const RUNTIME = 'node|channels|echo|http|ingest|pusher|transport|brokers|stores|outbound|hooks|webhooks|cli';
const FEATURES = 'channels|echo|http|ingest|pusher';
/** A metrics module: the registry (src/metrics.ts) or a folder's families (src/<folder>/metrics.ts, src/<folder>/<part>-metrics.ts). */
const METRICS_MODULE = '^src/(metrics|[^/]+/metrics|[^/]+/[a-z-]+-metrics)\\.ts$';

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
      comment: 'Config is parsed before anything runs: it may use protocol, errors, the logger and the HAProxy generator, no runtime folder.',
      from: { path: '^src/(config|haproxy)/' },
      to: { path: `${folders(RUNTIME)}|^src/(app|index|metrics)\\.ts$` },
    },
    {
      name: 'contracts-stand-apart',
      severity: 'error',
      comment: 'src/stores holds the Bus and store interfaces and the kits several brokers share: it knows no broker and nothing that runs above it.',
      from: { path: '^src/stores/' },
      to: { path: '^src/', pathNot: '^src/(stores|protocol|config)/|^src/(errors|logger)\\.ts$' },
    },
    {
      name: 'a-broker-is-one-room',
      severity: 'error',
      comment: 'A broker folder imports only its own files, the contracts (src/stores), protocol, config, errors and the logger: adding a broker is adding a folder.',
      from: { path: '^src/brokers/([^/]+)/' },
      to: { path: '^src/', pathNot: '^src/brokers/$1/|^src/(stores|protocol|config)/|^src/(errors|logger)\\.ts$' },
    },
    {
      name: 'broker-factories-reach-down',
      severity: 'error',
      comment: 'The factories that pick a broker by its address (src/brokers/*.ts) import broker folders and what they import, nothing that runs above them.',
      from: { path: '^src/brokers/[^/]+\\.ts$' },
      to: { path: `${folders('node', FEATURES, 'transport', 'hooks', 'webhooks', 'cli')}|^src/(app|index|metrics)\\.ts$` },
    },
    {
      name: 'adapters-do-not-reach-up',
      severity: 'error',
      comment: 'The transport, the back-end hooks, webhooks and metrics take narrow interfaces they declare; they never import the node or a feature.',
      from: { path: '^src/(transport|hooks|webhooks|outbound)/|^src/metrics\\.ts$' },
      to: { path: `${folders('node', FEATURES, 'cli')}|^src/(app|index)\\.ts$` },
    },
    {
      name: 'hooks-speak-http-only',
      severity: 'error',
      comment: 'src/hooks turns calls into verdicts; it knows no socket, broker, store or webhook (the gate and the channel endpoint act on its verdicts).',
      from: { path: '^src/hooks/' },
      to: { path: `${folders('transport', 'brokers', 'stores', 'webhooks')}|^src/metrics\\.ts$` },
    },
    {
      name: 'webhooks-are-not-hooks',
      severity: 'error',
      comment: 'Webhooks tell the back end what happened; hooks ask it for a verdict. Both call out through src/outbound and never import each other.',
      from: { path: '^src/webhooks/' },
      to: { path: '^src/hooks/' },
    },
    {
      name: 'outbound-is-plain-http',
      severity: 'error',
      comment: 'src/outbound makes HTTP calls with deadlines, caps and signatures; it knows neither hooks nor webhooks.',
      from: { path: '^src/outbound/' },
      to: { path: '^src/', pathNot: '^src/(outbound|protocol|config)/|^src/(errors|logger)\\.ts$' },
    },
    {
      name: 'core-knows-no-feature',
      severity: 'error',
      comment: 'The node core does not know echo, channels or the HTTP routes: the composition root registers them.',
      from: { path: '^src/node/' },
      to: { path: `${folders(FEATURES, 'cli')}|^src/(app|index)\\.ts$` },
    },
    {
      name: 'features-do-not-import-the-root',
      severity: 'error',
      comment: 'Features are registered by src/app.ts; they do not import it or the CLI.',
      from: { path: folders(FEATURES) },
      to: { path: `${folders('cli')}|^src/(app|index)\\.ts$` },
    },
    {
      name: 'features-stay-beside-each-other',
      severity: 'error',
      comment: 'A feature does not import another, except the channel service\'s public face (src/channels/index.ts), which the HTTP API, the Kafka ingest and the Pusher protocol publish through.',
      from: { path: `^src/(${FEATURES})/` },
      to: { path: folders(FEATURES), pathNot: '^src/$1/|^src/channels/index\\.ts$' },
    },
    {
      name: 'metrics-stay-beside-what-they-measure',
      severity: 'error',
      comment: 'Each folder declares the families that measure it and reports to them; the composition root (src/app.ts) registers them all on the node\'s registry and hands each part its own (another folder gets a narrow interface or a callback). No folder imports another folder\'s metrics module or the registry.',
      from: { path: '^src/([^/]+)/' },
      to: { path: METRICS_MODULE, pathNot: '^src/$1/' },
    },
    {
      name: 'families-live-in-metrics-modules',
      severity: 'error',
      comment: 'prom-client is used only by the metrics modules, so every family is declared beside what it measures and found in one kind of file.',
      from: { path: '^src/', pathNot: METRICS_MODULE },
      to: { path: '^node_modules/prom-client/' },
    },
    {
      name: 'not-to-dev-dep',
      severity: 'error',
      comment: 'A production install has no devDependencies: the product (src, client) never imports one.',
      from: { path: '^(src|client)/' },
      to: { dependencyTypes: ['npm-dev'] },
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
      comment: 'Tests and the benchmark share harness/; only the bench\'s own tests (test/*/bench-*.test.ts) import bench/.',
      from: { path: '^test/', pathNot: '^test/(integration|unit)/bench-[a-z-]+\\.test\\.ts$' },
      to: { path: '^bench/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
