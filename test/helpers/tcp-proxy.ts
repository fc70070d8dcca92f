/** The TCP proxy for fault tests lives in harness/ (the benchmark's fault mode uses it too). */
export { TcpProxy } from '../../harness/tcp-proxy.js';
