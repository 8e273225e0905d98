import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
import { randomUUID } from 'node:crypto';
import { CALL_TOKEN_TYPE } from '../contract/index.js';
import type { CallTokenAlgorithm } from '../contract/index.js';
import { hashBody } from '../http/body.js';
import type { CallTokenAuthOptions } from '../auth/call-token-verifier.js';

/** Claims a test may set or override. */
export interface TestTokenClaims {
  aud: string;
  sub?: string;
  tnt?: string;
  sid?: string;
  idk?: string;
  /** Override anything, including `iat`, `exp`, `bh`, `tool`, `mth`. */
  [claim: string]: unknown;
}

/** Signs call tokens with a key made for the test, like the gateway does. */
export interface TestSigner {
  readonly issuer: string;
  readonly publicJwk: JWK;
  /** Auth options for `createToolServer({ auth })` that trust this signer. */
  readonly auth: CallTokenAuthOptions;
  /** A token for this exact body. */
  sign(
    body: string | Uint8Array,
    claims: TestTokenClaims,
    header?: Record<string, unknown>,
  ): Promise<string>;
}

/** Make a signer with a fresh key pair. */
export async function createTestSigner(
  options: { issuer?: string; algorithm?: CallTokenAlgorithm; now?: () => number } = {},
): Promise<TestSigner> {
  const algorithm = options.algorithm ?? 'EdDSA';
  const issuer = options.issuer ?? 'keel-gateway';
  const now = options.now ?? Date.now;
  const { publicKey, privateKey } = await generateKeyPair(algorithm, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid: 'test-key', alg: algorithm };
  return {
    issuer,
    publicJwk,
    auth: { issuer, algorithm, publicKey: publicJwk },
    async sign(body, claims, header = {}) {
      const bytes = typeof body === 'string' ? Buffer.from(body) : body;
      const message = safeJson(bytes);
      const iat = Math.floor(now() / 1000);
      const payload: Record<string, unknown> = {
        sub: 'test-user',
        iat,
        exp: iat + 60,
        jti: randomUUID(),
        bh: hashBody(bytes),
        ...(message?.method ? { mth: message.method } : {}),
        ...(message?.method === 'tools/call' ? { tool: message.params?.name } : {}),
        iss: issuer,
        ...claims,
      };
      return new SignJWT(payload)
        .setProtectedHeader({ alg: algorithm, kid: 'test-key', typ: CALL_TOKEN_TYPE, ...header })
        .sign(privateKey);
    },
  };
}

function safeJson(bytes: Uint8Array): { method?: string; params?: { name?: string } } | undefined {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
}
