/**
 * Checks every MCP HTTP endpoint makes before reading a body: Host and Origin (DNS-rebinding
 * protection for local servers) and the JSON-RPC message shape.
 */

/** Host names that mean "this machine". */
export const LOCAL_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];

/** Whether a listen address is a loopback one (then only local Host names are accepted). */
export function isLoopbackHost(host: string): boolean {
  return LOCAL_HOSTS.includes(host === '::1' ? '[::1]' : host);
}

/** `undefined` allows any Host; otherwise the name (or name:port) must be listed. */
export function hostAllowed(host: string | null, allowed: readonly string[] | undefined): boolean {
  if (allowed === undefined) return true;
  if (host === null) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]!;
  return allowed.includes(name) || allowed.includes(host);
}

/** No Origin (not a browser) is fine; otherwise a listed one, or a local or same-host origin. */
export function originAllowed(
  origin: string | null,
  allowed: readonly string[] | undefined,
  host: string | null,
): boolean {
  if (origin === null) return true;
  if (allowed !== undefined) return allowed.includes(origin);
  try {
    const u = new URL(origin);
    return (
      LOCAL_HOSTS.includes(u.hostname) || LOCAL_HOSTS.includes(`[${u.hostname}]`) || u.host === host
    );
  } catch {
    return false;
  }
}

/** One JSON-RPC request or notification (batches are not supported). */
export interface JsonRpcMessage {
  jsonrpc: '2.0';
  id?: string | number;
  method: string;
  params?: Record<string, unknown>;
}

/** Whether a parsed body is a single JSON-RPC request or notification. */
export function isJsonRpcMessage(value: unknown): value is JsonRpcMessage {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return (
    v.jsonrpc === '2.0' &&
    typeof v.method === 'string' &&
    (v.id === undefined || typeof v.id === 'string' || typeof v.id === 'number') &&
    (v.params === undefined ||
      (typeof v.params === 'object' && v.params !== null && !Array.isArray(v.params)))
  );
}
