import { describe, expect, it } from 'vitest';
import { isKeelError } from '@keel/tool-sdk/contract';
import { MeterUnavailableError } from './meter-error.js';

describe('MeterUnavailableError', () => {
  it('carries a retryable UNAVAILABLE KeelError and keeps the cause out of the message', () => {
    const cause = new Error('connect ECONNREFUSED 127.0.0.1:6379');
    const error = new MeterUnavailableError('reserve', { cause });
    expect(error).toMatchObject({ code: 'UNAVAILABLE', retryable: true, retryAfterMs: 1_000 });
    expect(error.cause).toBe(cause);
    expect(error.keel.message).not.toContain('ECONNREFUSED');
    const keel = error.toKeelError('c-1');
    expect(isKeelError(keel)).toBe(true);
    expect(keel).toEqual({
      code: 'UNAVAILABLE',
      message: error.message,
      retryable: true,
      retryAfterMs: 1_000,
      correlationId: 'c-1',
    });
  });

  it('is recognised by isInstance across copies, not by instanceof alone', () => {
    expect(MeterUnavailableError.isInstance(new MeterUnavailableError('settle'))).toBe(true);
    expect(MeterUnavailableError.isInstance(new Error('x'))).toBe(false);
    expect(MeterUnavailableError.isInstance({ code: 'UNAVAILABLE' })).toBe(false);
  });
});
