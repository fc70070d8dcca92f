/**
 * A test file's private Kafka broker (harness/kafka.ts) whose second listener sits behind a TCP
 * proxy: clients that bootstrap through `proxy` can have their link cut while the others keep
 * theirs, and the broker can be killed and restarted without touching the shared one on 9092.
 */
import { KafkaProcess } from '../../harness/kafka.js';
import { freePort } from '../../harness/ports.js';
import { TcpProxy } from './tcp-proxy.js';

export interface ProxiedKafka {
  readonly kafka: KafkaProcess;
  readonly proxy: TcpProxy;
  /** Removes the broker's folder and closes the proxy. */
  destroy(): Promise<void>;
}

export async function startProxiedKafka(): Promise<ProxiedKafka> {
  const proxiedPort = await freePort();
  const proxy = await TcpProxy.start(proxiedPort);
  // A broker that did not start must not leave the proxy listening: the test file would never exit.
  const kafka = await KafkaProcess.start({ proxied: { port: proxiedPort, advertised: proxy.port } }).catch(async (err: unknown) => {
    await proxy.close();
    throw err;
  });
  return {
    kafka,
    proxy,
    destroy: async () => {
      await kafka.destroy();
      await proxy.close();
    },
  };
}
