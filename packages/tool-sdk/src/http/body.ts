import { createHash } from 'node:crypto';

/** A request body read under the size cap, with its hash computed while reading. */
export interface ReadBody {
  bytes: Buffer;
  /** base64url SHA-256 of the exact bytes (the `bh` claim). */
  hash: string;
}

/** Thrown when the body passes the cap. */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`Request body exceeds ${limit} bytes`);
  }
}

/** Read chunks until the end, failing as soon as the cap is passed. */
export async function readBody(
  chunks: AsyncIterable<Uint8Array>,
  limit: number,
): Promise<ReadBody> {
  const hash = createHash('sha256');
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    size += chunk.byteLength;
    if (size > limit) throw new BodyTooLargeError(limit);
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    hash.update(buf);
    parts.push(buf);
  }
  return {
    bytes: parts.length === 1 ? parts[0]! : Buffer.concat(parts, size),
    hash: hash.digest('base64url'),
  };
}

/** Hash of a body already in memory. */
export function hashBody(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url');
}
