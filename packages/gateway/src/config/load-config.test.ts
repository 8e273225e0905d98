import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../errors/gateway-error.js';
import {
  formatConfigIssues,
  loadGatewayConfig,
  mergePolicyDefaults,
  parseGatewayConfig,
} from './load-config.js';

const SHA = 'a'.repeat(64);

const GOOD = `
# A realistic file: two servers, keys from the environment, defaults for every server.
gateway:
  issuer: acme-gateway
  port: 7171
  namespacing: auto
auth:
  adminKeyEnv: ADMIN_KEY
  principals:
    - id: alice-ide
      keySha256: ${SHA}
      tools: ["orders__*"]
    - id: orchestrator
      kind: service
      keyEnv: ORCH_KEY
      requestLimit: { limit: 100 }
signing:
  algorithm: ES256
  keys:
    - kid: k2
      privateKeyFile: keys/k2.pem
    - kid: k1
      privateKeyEnv: OLD_KEY_PEM
      publishOnly: true
defaults:
  policies:
    deadlineMs: 8000
    retry: { maxAttempts: 5, baseDelayMs: 20 }
    rateLimits: [{ per: tenant, limit: 1000 }]
servers:
  - id: orders
    urls: [http://127.0.0.1:7101/mcp, http://127.0.0.1:7102/mcp]
    policies:
      retry: { baseDelayMs: 50 }
      rateLimits: [{ per: user, limit: 10 }]
    fallbacks: [orders-b]
    tools:
      get_order: { idempotent: true }
  - id: orders-b
    urls: [http://127.0.0.1:7103/mcp]
  - id: github
    urls: [https://example.com/mcp]
    auth: { mode: bearer, tokenEnv: GITHUB_TOKEN }
`;

const ENV = {
  ADMIN_KEY: 'admin',
  ORCH_KEY: 'orch',
  OLD_KEY_PEM: 'pem',
  GITHUB_TOKEN: 'ghp',
};

/** Parse and return the INVALID_CONFIG message (fails the test when parsing succeeds). */
function problem(text: string, env: Record<string, string> = ENV): string {
  try {
    parseGatewayConfig(text, 'gateway.yaml', env);
  } catch (error) {
    expect(GatewayError.isInstance(error)).toBe(true);
    expect((error as GatewayError).code).toBe('INVALID_CONFIG');
    return (error as GatewayError).message;
  }
  throw new Error('expected the config to be refused');
}

const minimal = (server: string) => `servers:\n${server}`;

describe('parseGatewayConfig', () => {
  it('reads a good file with every section', () => {
    const config = parseGatewayConfig(GOOD, '/etc/keel/gateway.yaml', ENV);
    expect(config.gateway).toMatchObject({
      issuer: 'acme-gateway',
      port: 7171,
      namespacing: 'auto',
    });
    expect(config.auth.principals.map((p) => [p.id, p.kind])).toEqual([
      ['alice-ide', 'apiKey'],
      ['orchestrator', 'service'],
    ]);
    expect(config.auth.principals[1]!.requestLimit).toEqual({ limit: 100, windowMs: 60_000 });
    expect(config.signing.algorithm).toBe('ES256');
    // Relative key files are taken from the config file's folder.
    expect(config.signing.keys[0]!.privateKeyFile).toBe('/etc/keel/keys/k2.pem');
    expect(config.servers.map((s) => s.id)).toEqual(['orders', 'orders-b', 'github']);
    expect(config.servers[0]!.tools.get_order).toEqual({ idempotent: true });
  });

  it('merges defaults.policies into every server; a server’s own fields win, lists are replaced', () => {
    const [orders, ordersB] = parseGatewayConfig(GOOD, 'gateway.yaml', ENV).servers;
    expect(orders!.policies.deadlineMs).toBe(8000);
    expect(orders!.policies.retry).toEqual({ maxAttempts: 5, baseDelayMs: 50, maxDelayMs: 2000 });
    expect(orders!.policies.rateLimits).toEqual([{ per: 'user', limit: 10, windowMs: 60_000 }]);
    expect(ordersB!.policies.deadlineMs).toBe(8000);
    expect(ordersB!.policies.retry).toEqual({ maxAttempts: 5, baseDelayMs: 20, maxDelayMs: 2000 });
    expect(ordersB!.policies.rateLimits).toEqual([
      { per: 'tenant', limit: 1000, windowMs: 60_000 },
    ]);
    // Untouched fields keep the schema's defaults.
    expect(ordersB!.policies.attemptTimeoutMs).toBe(10_000);
  });

  it('mergePolicyDefaults deep-merges mappings and never mutates its inputs', () => {
    const defaults = { retry: { maxAttempts: 5 }, breaker: { windowMs: 1 } };
    const merged = mergePolicyDefaults(defaults, { retry: { baseDelayMs: 1 }, deadlineMs: 3 });
    expect(merged).toEqual({
      retry: { maxAttempts: 5, baseDelayMs: 1 },
      breaker: { windowMs: 1 },
      deadlineMs: 3,
    });
    (merged as { retry: { maxAttempts: number } }).retry.maxAttempts = 9;
    expect(defaults.retry.maxAttempts).toBe(5);
  });

  it('an empty file is the all-defaults config', () => {
    const config = parseGatewayConfig('', 'gateway.yaml', {});
    expect(config.gateway).toMatchObject({
      port: 7070,
      issuer: 'keel-gateway',
      namespacing: 'always',
    });
    expect(config.servers).toEqual([]);
  });

  it('PORT and KEEL_GATEWAY_ISSUER override the file', () => {
    const config = parseGatewayConfig(GOOD, 'gateway.yaml', {
      ...ENV,
      PORT: '9000',
      KEEL_GATEWAY_ISSUER: 'gw-prod',
    });
    expect(config.gateway.port).toBe(9000);
    expect(config.gateway.issuer).toBe('gw-prod');
  });
});

describe('S15 bad gateway.yaml files: start-up refuses with the file, the field and the fix', () => {
  it('S15 invalid server id (the message names the file, the field path and the fix)', () => {
    const message = problem(
      minimal(
        '  - id: orders\n    urls: [http://a/mcp]\n  - id: Orders\n    urls: [http://b/mcp]\n',
      ),
    );
    expect(message).toBe(
      'gateway.yaml: servers[1].id: "Orders" is not a valid server id — use [a-z][a-z0-9-]{0,19}, no "_" (line 4)',
    );
  });

  it('S15 a server id with "_"', () => {
    expect(problem(minimal('  - id: my_orders\n    urls: [http://a/mcp]\n'))).toContain(
      'servers[0].id: "my_orders" is not a valid server id',
    );
  });

  it('S15 duplicate YAML keys', () => {
    const message = problem('gateway:\n  port: 1\n  port: 2\n');
    expect(message).toMatch(
      /^gateway\.yaml: gateway\.port: Map keys must be unique — remove or rename one of them \(line 3\)$/,
    );
  });

  it('S15 broken YAML syntax', () => {
    const message = problem('servers:\n  - id: a\n    urls: [http://a/mcp\n');
    expect(message).toMatch(/^gateway\.yaml: .*— fix the YAML syntax/);
    expect(message).toContain('line');
  });

  it('S15 a file that is not a mapping', () => {
    expect(problem('- a\n- b\n')).toBe(
      'gateway.yaml: the file holds a list — it must be a mapping (gateway:, servers:, ...)',
    );
  });

  it('S15 a YAML alias bomb', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (let i = 0; i < 8; i++) {
      const prev = String.fromCharCode(97 + i);
      const next = String.fromCharCode(98 + i);
      bomb.push(`${next}: &${next} [${Array(9).fill(`*${prev}`).join(', ')}]`);
    }
    expect(problem(bomb.join('\n'))).toBe(
      'gateway.yaml: too many YAML alias expansions — write the values out, or use fewer aliases',
    );
  });

  it('S15 a URL that is not http(s)', () => {
    const message = problem(
      minimal('  - id: a\n    urls: [http://a/mcp]\n  - id: b\n    urls: ["ftp://b/mcp"]\n'),
    );
    expect(message).toContain(
      'servers[1].urls[0]: "ftp://b/mcp" is not an http(s) URL — use e.g. http://127.0.0.1:7101/mcp',
    );
  });

  it('S15 a server without urls, and an empty urls list', () => {
    expect(problem(minimal('  - id: a\n'))).toContain(
      'servers[0].urls: is missing — add it (a list)',
    );
    expect(problem(minimal('  - id: a\n    urls: []\n'))).toContain(
      'servers[0].urls: lists 0 items — list at least 1',
    );
  });

  it('S15 an unknown field, with a suggestion when it looks like a typo', () => {
    expect(problem(minimal('  - id: a\n    url: [http://a/mcp]\n'))).toContain(
      'servers[0].url: unknown field — did you mean "urls"?',
    );
    expect(problem('gateway:\n  colour: blue\n')).toContain(
      'gateway.colour: unknown field — remove it, or use one of issuer, port, host, namespacing, maxBodyBytes (line 2)',
    );
    expect(
      problem(
        minimal(
          '  - id: a\n    urls: [http://a/mcp]\n    policies:\n      retry: { maxAtempts: 2 }\n',
        ),
      ),
    ).toContain(
      'servers[0].policies.retry.maxAtempts: unknown field — did you mean "maxAttempts"?',
    );
  });

  it('S15 wrong types and out-of-range numbers', () => {
    expect(problem('gateway:\n  port: "7070"\n')).toContain(
      'gateway.port: expected a number, got "7070" — write a number (without quotes)',
    );
    expect(problem('gateway:\n  port: 70000\n')).toContain(
      'gateway.port: 70000 is out of range — use a number ≤ 65535',
    );
    expect(problem(minimal('  - id: a\n    urls: http://a/mcp\n'))).toContain(
      'servers[0].urls: expected a list, got "http://a/mcp" — write a list ("- item" lines, or [a, b])',
    );
  });

  it('S15 a value outside an enum, and an unknown upstream auth mode', () => {
    expect(problem('gateway:\n  namespacing: sometimes\n')).toContain(
      'gateway.namespacing: "sometimes" is not allowed — use one of "always", "auto", "never"',
    );
    expect(
      problem(minimal('  - id: a\n    urls: [http://a/mcp]\n    auth: { mode: jwt }\n')),
    ).toContain(
      'servers[0].auth.mode: "jwt" is not allowed — use one of "keel-jwt", "none", "bearer"',
    );
  });

  it('S15 duplicate server ids', () => {
    expect(
      problem(
        minimal('  - id: a\n    urls: [http://a/mcp]\n  - id: a\n    urls: [http://b/mcp]\n'),
      ),
    ).toContain('servers[1].id: "a" is also the id of servers[0] — give each server its own id');
  });

  it('S15 a replica URL listed twice', () => {
    expect(problem(minimal('  - id: a\n    urls: [http://a/mcp, http://a/mcp]\n'))).toContain(
      'servers[0].urls[1]: "http://a/mcp" is listed twice (urls[0]) — remove one',
    );
  });

  it('S15 fallbacks to an unknown server or to itself, per server and per tool', () => {
    const message = problem(
      minimal(
        '  - id: a\n    urls: [http://a/mcp]\n    fallbacks: [b, a]\n' +
          '    tools:\n      search: { fallbacks: [zed] }\n  - id: b\n    urls: [http://b/mcp]\n',
      ),
    );
    expect(message).toContain(
      'servers[0].fallbacks[1]: "a" is this server itself — a fallback must be another server',
    );
    expect(message).toContain(
      'servers[0].tools.search.fallbacks[0]: "zed" is not a configured server — use one of the ids under servers (a, b)',
    );
    expect(message).not.toContain('fallbacks[0]: "b"');
  });

  it('S15 duplicate principal ids and keys', () => {
    const message = problem(
      `auth:\n  principals:\n    - { id: ide, keySha256: ${SHA} }\n    - { id: ide, keySha256: ${SHA} }\n`,
    );
    expect(message).toContain(
      'auth.principals[1].id: "ide" is also the id of auth.principals[0] — give each principal its own id',
    );
    expect(message).toContain('auth.principals[1].keySha256: the same key as auth.principals[0]');
  });

  it('S15 a principal with both or neither of keySha256 and keyEnv, and a bad hash (never echoed)', () => {
    expect(
      problem(`auth:\n  principals:\n    - { id: ide, keySha256: ${SHA}, keyEnv: K }\n`, {
        K: 'x',
      }),
    ).toContain('auth.principals[0]: set exactly one of keySha256 or keyEnv');
    const bad = problem('auth:\n  principals:\n    - { id: ide, keySha256: my-secret-key }\n');
    expect(bad).toContain('auth.principals[0].keySha256: the value is not a sha256 hex digest');
    expect(bad).not.toContain('my-secret-key');
  });

  it('S15 secrets named in the file but missing from the environment', () => {
    const message = problem(GOOD, {
      ...ENV,
      ORCH_KEY: '',
      GITHUB_TOKEN: undefined as unknown as string,
    });
    expect(message).toContain(
      'auth.principals[1].keyEnv: environment variable ORCH_KEY is not set — set ORCH_KEY to the API key',
    );
    expect(message).toContain(
      'servers[2].auth.tokenEnv: environment variable GITHUB_TOKEN is not set',
    );
    expect(problem(GOOD, { ...ENV, OLD_KEY_PEM: '' })).toContain(
      'signing.keys[1].privateKeyEnv: environment variable OLD_KEY_PEM is not set',
    );
    expect(problem(GOOD, { ...ENV, ADMIN_KEY: '' })).toContain(
      'auth.adminKeyEnv: environment variable ADMIN_KEY is not set',
    );
  });

  it('S15 signing keys: duplicate kid, none able to sign, both sources', () => {
    const keys = (body: string) => problem(`signing:\n  keys:\n${body}`, { P: 'pem' });
    expect(
      keys('    - { kid: a, privateKeyEnv: P }\n    - { kid: a, privateKeyEnv: P }\n'),
    ).toContain('signing.keys[1].kid: "a" is also the kid of signing.keys[0]');
    expect(keys('    - { kid: a, privateKeyEnv: P, publishOnly: true }\n')).toContain(
      'signing.keys: every key is publishOnly, so none can sign',
    );
    expect(keys('    - { kid: a, privateKeyEnv: P, privateKeyFile: k.pem }\n')).toContain(
      'signing.keys[0]: set exactly one of privateKeyFile or privateKeyEnv',
    );
    expect(problem('signing:\n  algorithm: RS256\n')).toContain(
      'signing.algorithm: "RS256" is not allowed — use one of "EdDSA", "ES256"',
    );
  });

  it('S15 bad defaults are reported where they were written', () => {
    const message = problem(
      'defaults:\n  policies:\n    retry: { maxAttempts: 0 }\nservers:\n  - id: a\n    urls: [http://a/mcp]\n',
    );
    expect(message).toBe(
      'gateway.yaml: defaults.policies.retry.maxAttempts: 0 is out of range — use a number ≥ 1 (line 3)',
    );
  });

  it('S15 bad PORT or KEEL_GATEWAY_ISSUER in the environment', () => {
    expect(problem('', { PORT: 'http' })).toBe(
      'gateway.yaml: gateway.port (from environment variable PORT): "http" is not a port — set PORT to an integer 0-65535',
    );
    expect(problem('', { PORT: '70000' })).toContain('is not a port');
    expect(problem('', { KEEL_GATEWAY_ISSUER: 'my gateway' })).toContain(
      'gateway.issuer (from environment variable KEEL_GATEWAY_ISSUER): "my gateway" is not a valid issuer',
    );
  });

  it('S15 reports every problem at once, one line each, with details for tools', () => {
    let error: GatewayError | undefined;
    try {
      parseGatewayConfig(
        'gateway:\n  port: x\n  namespacing: no\nservers:\n  - id: A\n    urls: []\n',
        'gw.yaml',
        {},
      );
    } catch (e) {
      error = e as GatewayError;
    }
    const lines = error!.message.split('\n');
    expect(lines).toHaveLength(4);
    for (const line of lines) expect(line.startsWith('gw.yaml: ')).toBe(true);
    expect((error!.details as { issues: unknown[] }).issues).toHaveLength(4);
  });
});

describe('loadGatewayConfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keel-gw-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the file and checks key files relative to it', async () => {
    const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' });
    await writeFile(join(dir, 'signer.pem'), pem);
    const file = join(dir, 'gateway.yaml');
    await writeFile(file, 'signing:\n  keys:\n    - { kid: k1, privateKeyFile: signer.pem }\n');
    const config = await loadGatewayConfig(file, {});
    expect(config.signing.keys[0]!.privateKeyFile).toBe(join(dir, 'signer.pem'));
  });

  it('S15 a missing config file', async () => {
    const file = join(dir, 'nope.yaml');
    await expect(loadGatewayConfig(file, {})).rejects.toThrow(
      `${file}: cannot read the file (ENOENT) — check the path given to --config`,
    );
  });

  it('S15 a missing key file', async () => {
    const file = join(dir, 'gateway-missing-key.yaml');
    await writeFile(file, 'signing:\n  keys:\n    - { kid: k1, privateKeyFile: missing.pem }\n');
    await expect(loadGatewayConfig(file, {})).rejects.toThrow(
      /signing\.keys\[0\]\.privateKeyFile: cannot read ".*missing\.pem" \(ENOENT\) — point it at a PKCS#8 PEM file/,
    );
  });
});

describe('formatConfigIssues', () => {
  it('one line per issue with the file first', () => {
    expect(
      formatConfigIssues('g.yaml', [
        { path: 'a.b', message: 'is wrong — fix it', line: 3 },
        { path: '', message: 'whole file' },
      ]),
    ).toBe('g.yaml: a.b: is wrong — fix it (line 3)\ng.yaml: whole file');
  });
});
