import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noProxyMatches, proxyFor, shownProxy } from '../../../src/registry/network.ts';

test('NO_PROXY rules as curl and Go read them', () => {
  const cases: [string, number, string, boolean][] = [
    ['registry.corp', 443, 'registry.corp', true],
    ['a.registry.corp', 443, 'registry.corp', true], // domain and its subdomains
    ['a.registry.corp', 443, '.registry.corp', true],
    ['a.registry.corp', 443, '*.registry.corp', true],
    ['notregistry.corp', 443, 'registry.corp', false], // not a suffix at a dot
    ['registry.corp', 5000, 'registry.corp:5000', true],
    ['registry.corp', 443, 'registry.corp:5000', false], // port-specific entry
    ['10.1.2.3', 80, '10.0.0.0/8', true],
    ['11.1.2.3', 80, '10.0.0.0/8', false],
    ['::1', 80, '::1', true],
    ['[::1]', 80, '::/0', true],
    ['fd00::5', 80, 'fd00::/8', true],
    ['127.0.0.1', 5000, 'localhost', false], // loopback is proxied unless listed (curl, not Go)
    ['anything', 1, 'a.b, *', true],
    ['x.example', 443, ' a.example ,x.example ', true], // spaces and commas
    ['X.Example', 443, 'x.EXAMPLE', true],
    ['1.2.3.4', 80, '2.3.4', false], // no suffix matching for addresses
    ['host', 80, '', false],
  ];
  for (const [host, port, list, want] of cases) {
    assert.equal(noProxyMatches(host, port, list), want, `${host}:${port} vs "${list}"`);
  }
});

test('proxyFor picks the variable by scheme, lower case first, and honours NO_PROXY', () => {
  const env = {
    https_proxy: 'proxy.corp:3128',
    HTTPS_PROXY: 'http://upper:1',
    HTTP_PROXY: 'http://p:8080',
    NO_PROXY: 'internal.corp',
  };
  assert.deepEqual(proxyFor(new URL('https://ghcr.io/v2/'), env), {
    uri: 'http://proxy.corp:3128',
    from: 'HTTPS_PROXY',
  });
  assert.deepEqual(proxyFor(new URL('http://r:5000/v2/'), env), { uri: 'http://p:8080', from: 'HTTP_PROXY' });
  assert.equal(proxyFor(new URL('https://x.internal.corp/v2/'), env), undefined);
  assert.equal(proxyFor(new URL('https://ghcr.io/v2/'), {}), undefined);
  assert.equal(shownProxy('http://user:secret@proxy.corp:3128'), 'http://proxy.corp:3128');
});
