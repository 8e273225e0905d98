/**
 * Who is calling the orchestrator (DESIGN.md section 6): a user from an IdP JWT, or an
 * application backend's service key naming the user with `X-Keel-User` / `X-Keel-Tenant`.
 */
export interface Principal {
  readonly user: string;
  readonly tenant: string;
  readonly via: 'jwt' | 'api-key' | 'service-key' | 'dev';
  /** The API key's id (never the key), for logs. */
  readonly keyId?: string;
}

/** Authenticates one request; throws an AuthError (UNAUTHENTICATED / FORBIDDEN) otherwise. */
export interface Authenticator {
  authenticate(
    headers: Readonly<Record<string, string | string[] | undefined>>,
  ): Promise<Principal>;
}
