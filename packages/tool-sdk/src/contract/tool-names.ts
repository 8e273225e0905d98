/**
 * Tool and server names (DESIGN.md section 2).
 */

/** A logical tool server id: also the audience of its call tokens. */
export const SERVER_ID_PATTERN = /^[a-z][a-z0-9-]{0,19}$/;
/** A tool-sdk tool name. */
export const TOOL_NAME_PATTERN = /^[a-z][a-z0-9_]{0,39}$/;
/** Separator between server id and tool name in an exposed name. */
export const NAMESPACE_SEPARATOR = '__';
/** Longest exposed name. */
export const EXPOSED_NAME_MAX_LENGTH = 64;

/** `orders` + `refund_order` → `orders__refund_order`. */
export function exposedToolName(serverId: string, tool: string): string {
  return `${serverId}${NAMESPACE_SEPARATOR}${tool}`;
}

/** Split an exposed name on the first `__`; `undefined` when it has none. */
export function splitExposedToolName(
  exposed: string,
): { serverId: string; tool: string } | undefined {
  const at = exposed.indexOf(NAMESPACE_SEPARATOR);
  if (at <= 0) return undefined;
  return { serverId: exposed.slice(0, at), tool: exposed.slice(at + NAMESPACE_SEPARATOR.length) };
}
