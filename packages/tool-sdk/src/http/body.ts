import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

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

/**
 * Read a Node request body under the cap with plain `data`/`end` events (no async iterator per
 * request). Past the cap it stops reading and leaves the socket open, so a 413 still reaches the
 * client.
 */
export function readNodeBody(stream: Readable, limit: number): Promise<ReadBody> {
  return new Promise((resolve, reject) => {
    if (stream.destroyed) return reject(new Error('Request body interrupted'));
    const hash = createHash('sha256');
    const parts: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      stream.removeListener('error', onError);
      stream.removeListener('close', onClose);
    };
    const onData = (chunk: Buffer | string) => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += buf.byteLength;
      if (size > limit) {
        cleanup();
        stream.pause();
        reject(new BodyTooLargeError(limit));
        return;
      }
      hash.update(buf);
      parts.push(buf);
    };
    const onEnd = () => {
      cleanup();
      resolve({
        bytes: parts.length === 1 ? parts[0]! : Buffer.concat(parts, size),
        hash: hash.digest('base64url'),
      });
    };
    const onError = (error: unknown) => {
      cleanup();
      reject(error);
    };
    // Destroyed before the end (client gone, request timeout).
    const onClose = () => {
      cleanup();
      reject(new Error('Request body interrupted'));
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}
