/**
 * Pre-signed call tokens and bodies, so the load generator does no crypto during a run.
 * Tokens are compact JWS (EdDSA) built with node:crypto's synchronous Ed25519 signer,
 * several times faster than an async signer; the bytes are identical in form to jose's SignJWT.
 */
import type { CryptoKey } from 'jose';
import { KeyObject, randomUUID, sign } from 'node:crypto';
import { AUDIENCE, ISSUER, KID, TOOL_NAME, hashBody } from './p1-shared.js';

export interface SignedCall {
  body: string;
  token: string;
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Sign `count` unique calls (unique jti and JSON-RPC id; `bh` bound to the exact body bytes). */
export function presignCalls(privateKey: CryptoKey, count: number): SignedCall[] {
  const key = KeyObject.from(privateKey);
  const header = b64url({ alg: 'EdDSA', kid: KID, typ: 'keel-call+jwt' });
  const iat = Math.floor(Date.now() / 1000);
  const calls: SignedCall[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: i + 1,
      method: 'tools/call',
      params: { name: TOOL_NAME, arguments: { a: 1, b: 2 } },
    });
    const signingInput = `${header}.${b64url({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'u',
      iat,
      exp: iat + 60,
      jti: randomUUID(),
      mth: 'tools/call',
      tool: TOOL_NAME,
      bh: hashBody(body),
    })}`;
    const signature = sign(null, Buffer.from(signingInput), key).toString('base64url');
    calls[i] = { body, token: `${signingInput}.${signature}` };
  }
  return calls;
}
