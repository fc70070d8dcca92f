import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { normalizeOrigin, originPolicy } from '../../src/config/origins.js';
import { originAllowed } from '../../src/transport/origin.js';

test('same-origin by default: the Origin host:port must equal the Host header', () => {
  const policy = originPolicy([]);
  assert.equal(originAllowed(policy, 'http://localhost:3000', 'localhost:3000'), true);
  assert.equal(originAllowed(policy, 'https://chat.example.com', 'chat.example.com', 'https'), true, 'default port from the scheme');
  assert.equal(originAllowed(policy, 'https://chat.example.com', 'chat.example.com:443', 'https'), true);
  assert.equal(originAllowed(policy, 'HTTP://LOCALHOST:3000', 'localhost:3000'), true, 'case-insensitive host');
  assert.equal(originAllowed(policy, 'http://evil.example:3000', 'localhost:3000'), false);
  assert.equal(originAllowed(policy, 'http://localhost:3001', 'localhost:3000'), false, 'another port is another origin');
  assert.equal(originAllowed(policy, 'https://chat.example.com', 'chat.example.com:80', 'https'), false, 'https origin, port 80 host');
  assert.equal(originAllowed(policy, 'http://localhost:3000.evil.example', 'localhost:3000'), false);
  assert.equal(originAllowed(policy, 'null', 'localhost:3000'), false, 'Origin: null is foreign');
  assert.equal(originAllowed(policy, 'http://localhost:3000', undefined), false, 'no Host header');
  assert.equal(originAllowed(policy, 'http://localhost:3000', 'localhost:3000/x'), false, 'malformed Host header');
});

test('same-origin compares the scheme too: another scheme on the same host and port is another origin', () => {
  const policy = originPolicy([]);
  assert.equal(originAllowed(policy, 'https://localhost:3000', 'localhost:3000', 'http'), false, 'https page, plain-http node');
  assert.equal(originAllowed(policy, 'ftp://localhost:3000', 'localhost:3000', 'http'), false);
  assert.equal(originAllowed(policy, 'http://chat.example.com', 'chat.example.com', 'https'), false, 'http page, TLS node');
  assert.equal(originAllowed(policy, 'ws://localhost:3000', 'localhost:3000', 'http'), true, 'ws counts as http');
});

test('clients that send no Origin (non-browsers) pass every policy', () => {
  assert.equal(originAllowed(originPolicy([]), undefined, 'localhost:3000'), true);
  assert.equal(originAllowed(originPolicy(['https://app.example']), undefined, 'x'), true);
});

test('--allowed-origins is an exact list: no prefix, suffix or substring match', () => {
  const policy = originPolicy(['http://good.example', 'https://app.example:8443']);
  assert.equal(originAllowed(policy, 'http://good.example', 'node:3000'), true);
  assert.equal(originAllowed(policy, 'http://good.example:80', 'node:3000'), true, 'explicit default port is the same origin');
  assert.equal(originAllowed(policy, 'https://app.example:8443', 'node:3000'), true);
  for (const foreign of [
    'http://good.example.evil.example',
    'http://evil.example/http://good.example',
    'http://evilgood.example',
    'https://good.example',
    'http://good.example:8080',
    'https://app.example',
    'http://sub.good.example',
    'null',
    '',
  ]) {
    assert.equal(originAllowed(policy, foreign, 'node:3000'), false, foreign);
  }
  assert.equal(originAllowed(policy, 'http://node:3000', 'node:3000'), false, 'a list replaces same-origin');
});

test('* is allowed only alone; list entries must be origins', () => {
  assert.equal(originPolicy(['*']).kind, 'any');
  assert.equal(originAllowed(originPolicy(['*']), 'http://anything.example', 'x:1'), true);
  assert.throws(() => originPolicy(['*', 'http://a.example']), ConfigError);
  assert.throws(() => originPolicy(['good.example']), /--allowed-origins/);
  assert.throws(() => originPolicy(['http://good.example/path']), /--allowed-origins/);
  assert.equal(normalizeOrigin('https://A.example/'), 'https://a.example:443');
});
