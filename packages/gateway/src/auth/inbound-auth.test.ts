import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { META_KEYS } from '@keel/tool-sdk/contract';
import { gatewayConfigSchema } from '../config/gateway-config.js';
import { GatewayError } from '../errors/gateway-error.js';
import { createInboundAuth, endUserContext, toolMatcher } from './inbound-auth.js';
import type { InboundAuthOptions, Principal } from './inbound-auth.js';

const sha = (key: string) => createHash('sha256').update(key).digest('hex');
const IDE_KEY = 'ide-key-0123456789';
const SERVICE_KEY = 'svc-key-0123456789';
const ENV_KEY = 'env-key-0123456789';

function authConfig(auth: unknown) {
  return gatewayConfigSchema.parse({ auth }).auth;
}

function recordingLogger() {
  const lines: string[] = [];
  return {
    lines,
    logger: {
      warn: (_obj: unknown, msg: string) => void lines.push(msg),
    } as InboundAuthOptions['logger'],
  };
}

const bearer = (key: string) => new Headers({ authorization: `Bearer ${key}` });

function rejected(run: () => unknown): GatewayError {
  try {
    run();
  } catch (error) {
    expect(GatewayError.isInstance(error)).toBe(true);
    return error as GatewayError;
  }
  throw new Error('expected an error');
}

describe('createInboundAuth', () => {
  const config = authConfig({
    principals: [
      { id: 'alice-ide', keySha256: sha(IDE_KEY), tools: ['orders__*', 'kb__search'] },
      {
        id: 'orchestrator',
        kind: 'service',
        keySha256: sha(SERVICE_KEY),
        requestLimit: { limit: 50 },
      },
      { id: 'ci', keyEnv: 'CI_KEY' },
    ],
  });
  const auth = createInboundAuth({ config, env: { CI_KEY: `${ENV_KEY}\n` } });

  it('finds the principal of a known API key (by sha256 hash)', () => {
    const ide = auth.authenticate(bearer(IDE_KEY));
    expect(ide).toMatchObject({ id: 'alice-ide', kind: 'apiKey' });
    expect(ide.requestLimit).toBeUndefined();
    const service = auth.authenticate(bearer(SERVICE_KEY));
    expect(service).toMatchObject({
      id: 'orchestrator',
      kind: 'service',
      requestLimit: { limit: 50, windowMs: 60_000 },
    });
    // Same object each time (callers may cache by principal).
    expect(auth.authenticate(bearer(IDE_KEY))).toBe(ide);
  });

  it('reads keyEnv keys from the environment (hashed at start-up, trailing newline trimmed)', () => {
    expect(auth.authenticate(bearer(ENV_KEY)).id).toBe('ci');
  });

  it('accepts any case of the Bearer scheme', () => {
    expect(auth.authenticate(new Headers({ authorization: `bearer  ${IDE_KEY}` })).id).toBe(
      'alice-ide',
    );
  });

  it('refuses missing, malformed and unknown credentials with UNAUTHENTICATED', () => {
    for (const headers of [
      new Headers(),
      new Headers({ authorization: IDE_KEY }),
      new Headers({ authorization: `Basic ${Buffer.from(`x:${IDE_KEY}`).toString('base64')}` }),
      new Headers({ authorization: `Bearer ${IDE_KEY} extra` }),
      bearer(`${IDE_KEY}x`),
      bearer(sha(IDE_KEY)), // the hash itself is not a key
      bearer('x'.repeat(10_000)),
    ]) {
      const error = rejected(() => auth.authenticate(headers));
      expect(error.code).toBe('UNAUTHENTICATED');
      expect(error.message).not.toContain(IDE_KEY);
    }
  });

  it('a principal sees only the tools its globs allow', () => {
    const ide = auth.authenticate(bearer(IDE_KEY));
    expect(ide.allows('orders__get_order')).toBe(true);
    expect(ide.allows('orders__')).toBe(true);
    expect(ide.allows('kb__search')).toBe(true);
    expect(ide.allows('kb__search_all')).toBe(false);
    expect(ide.allows('kb__delete')).toBe(false);
    expect(ide.allows('xorders__get_order')).toBe(false);
    expect(auth.authenticate(bearer(SERVICE_KEY)).allows('anything__at_all')).toBe(true);
  });

  it('S15 refuses to start when a keyEnv variable is unset or two principals share a key', () => {
    const missing = rejected(() => createInboundAuth({ config, env: {} }));
    expect(missing.code).toBe('INVALID_CONFIG');
    expect(missing.message).toBe(
      'auth.principals[2].keyEnv: environment variable CI_KEY is not set — set CI_KEY to the API key',
    );
    const shared = rejected(() => createInboundAuth({ config, env: { CI_KEY: IDE_KEY } }));
    expect(shared.message).toContain('auth.principals[2]: the same key as principal "alice-ide"');
  });

  it('with development off and no principals, every request is 401 (and says so at start-up)', () => {
    const { lines, logger } = recordingLogger();
    const closed = createInboundAuth({ config: authConfig({}), env: {}, logger });
    expect(closed.development).toBe(false);
    expect(rejected(() => closed.authenticate(new Headers())).code).toBe('UNAUTHENTICATED');
    expect(rejected(() => closed.authenticate(bearer('anything'))).code).toBe('UNAUTHENTICATED');
    expect(lines).toEqual([expect.stringContaining('every request will be refused')]);
  });

  it('development mode: no credentials needed, one loud warning, a known key still wins, a wrong key is refused', () => {
    const { lines, logger } = recordingLogger();
    const dev = createInboundAuth({
      config: authConfig({
        development: true,
        principals: [{ id: 'alice-ide', keySha256: sha(IDE_KEY), tools: ['a__*'] }],
      }),
      env: {},
      logger,
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('DEVELOPMENT MODE');
    const anyone = dev.authenticate(new Headers());
    expect(anyone).toMatchObject({ id: 'development', kind: 'development' });
    expect(anyone.allows('whatever__tool')).toBe(true);
    dev.authenticate(new Headers());
    expect(lines).toHaveLength(1);
    expect(dev.authenticate(bearer(IDE_KEY)).id).toBe('alice-ide');
    expect(rejected(() => dev.authenticate(bearer('typo'))).code).toBe('UNAUTHENTICATED');
  });
});

describe('toolMatcher', () => {
  it('treats only * as special', () => {
    const allows = toolMatcher(['a.b__*', 'x*y', 'exact']);
    expect(allows('a.b__tool')).toBe(true);
    expect(allows('aXb__tool')).toBe(false);
    expect(allows('xy')).toBe(true);
    expect(allows('x-anything-y')).toBe(true);
    expect(allows('x-anything-z')).toBe(false);
    expect(allows('exact')).toBe(true);
    expect(allows('exactly')).toBe(false);
    expect(toolMatcher([])('a')).toBe(false);
  });
});

describe('endUserContext', () => {
  const principal = (kind: Principal['kind'], id = `${kind}-1`): Principal => ({
    id,
    kind,
    allows: () => true,
  });
  const TRACE = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const meta = {
    [META_KEYS.user]: 'user-42',
    [META_KEYS.tenant]: 'acme',
    [META_KEYS.session]: 'sess-9',
    [META_KEYS.idempotencyKey]: 'idem-1',
    [META_KEYS.traceparent]: TRACE,
  };

  it('a service principal passes user, tenant, session, idempotency key and traceparent', () => {
    expect(endUserContext(principal('service'), meta)).toEqual({
      user: 'user-42',
      tenant: 'acme',
      session: 'sess-9',
      idempotencyKey: 'idem-1',
      traceparent: TRACE,
    });
  });

  it('a service principal without dev.keel/user acts as itself', () => {
    expect(
      endUserContext(principal('service', 'orchestrator'), { [META_KEYS.tenant]: 'acme' }),
    ).toEqual({
      user: 'orchestrator',
      tenant: 'acme',
    });
  });

  it('API keys and development act as themselves: identity in _meta is ignored, idempotency key and trace honoured', () => {
    for (const kind of ['apiKey', 'development'] as const) {
      expect(endUserContext(principal(kind, 'alice-ide'), meta)).toEqual({
        user: 'alice-ide',
        idempotencyKey: 'idem-1',
        traceparent: TRACE,
      });
    }
  });

  it('ignored identity keys are not even validated for non-service callers', () => {
    expect(
      endUserContext(principal('apiKey', 'a'), { [META_KEYS.user]: 42, [META_KEYS.tenant]: '' }),
    ).toEqual({
      user: 'a',
    });
  });

  it('no _meta: the principal itself', () => {
    expect(endUserContext(principal('service', 'svc'), undefined)).toEqual({ user: 'svc' });
  });

  it('refuses bad values with INVALID_INPUT without echoing them', () => {
    const bad: unknown[] = [
      42,
      null,
      '',
      'x'.repeat(257),
      'evil\nlog-line',
      'tab\there',
      '\u202Ereversed',
      { a: 1 },
    ];
    for (const value of bad) {
      for (const key of [
        META_KEYS.user,
        META_KEYS.tenant,
        META_KEYS.session,
        META_KEYS.idempotencyKey,
      ]) {
        const error = rejected(() => endUserContext(principal('service'), { [key]: value }));
        expect(error.code).toBe('INVALID_INPUT');
        expect(error.retryable).toBe(false);
        expect(error.message).toContain(key);
        if (typeof value === 'string' && value.length > 0)
          expect(error.message).not.toContain(value);
      }
    }
    // A non-service caller's idempotency key is checked too.
    expect(
      rejected(() => endUserContext(principal('apiKey'), { [META_KEYS.idempotencyKey]: 7 })).code,
    ).toBe('INVALID_INPUT');
  });

  it('accepts printable unicode, up to 256 characters', () => {
    const context = endUserContext(principal('service'), {
      [META_KEYS.user]: 'jürgen@example.de',
      [META_KEYS.tenant]: 't'.repeat(256),
    });
    expect(context).toMatchObject({ user: 'jürgen@example.de', tenant: 't'.repeat(256) });
  });

  it('drops an invalid traceparent instead of failing the call', () => {
    for (const traceparent of [
      'nonsense',
      42,
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    ]) {
      expect(
        endUserContext(principal('apiKey', 'a'), { [META_KEYS.traceparent]: traceparent }),
      ).toEqual({ user: 'a' });
    }
  });
});
