/**
 * --tls-cert and --tls-key read and checked at load: both PEM files must be readable, the
 * certificate must parse, the key must be a private key, and the two must belong together, so
 * the HTTPS server is built from bytes that are known to work.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { ConfigError } from '../errors.js';
import { firstLine, readPem } from './files.js';

/** The certificate chain and private key the node serves https and wss with (PEM bytes). */
export interface TlsFiles {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** Reads and checks the pair; throws a ConfigError naming the flag whose file is at fault. */
export function readTls(certFile: string, keyFile: string): TlsFiles {
  const cert = readPem(certFile, '--tls-cert');
  const key = readPem(keyFile, '--tls-key');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new ConfigError('--tls-cert', `${certFile} is not a PEM certificate (${firstLine(err)})`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new ConfigError('--tls-key', `${keyFile} is not an unencrypted PEM private key (${firstLine(err)})`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new ConfigError('--tls-key', `${keyFile} is not the key of the --tls-cert certificate`);
  return Object.freeze({ cert, key });
}
