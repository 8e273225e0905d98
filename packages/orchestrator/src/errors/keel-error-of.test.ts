import { describe, expect, it } from 'vitest';
import { httpStatusOf, keelErrorOf } from './keel-error-of.js';

describe('keelErrorOf', () => {
  it('uses toKeelError when the error has it', () => {
    const error = {
      toKeelError: (id: string) => ({
        code: 'UNAVAILABLE',
        message: 'down',
        retryable: true,
        correlationId: id,
      }),
    };
    expect(keelErrorOf(error, 'c1')).toEqual({
      code: 'UNAVAILABLE',
      message: 'down',
      retryable: true,
      correlationId: 'c1',
    });
  });

  it('stamps a keel field with the correlation id when it has none', () => {
    const error = {
      keel: { code: 'RATE_LIMITED', message: 'slow down', retryable: true, correlationId: '' },
    };
    expect(keelErrorOf(error, 'c2')).toMatchObject({ code: 'RATE_LIMITED', correlationId: 'c2' });
  });

  it('has nothing for plain errors', () => {
    expect(keelErrorOf(new Error('secret at 10.0.0.1'), 'c3')).toBeUndefined();
    expect(keelErrorOf('x', 'c3')).toBeUndefined();
  });

  it('maps codes to HTTP statuses', () => {
    expect(httpStatusOf('UNAVAILABLE')).toBe(503);
    expect(httpStatusOf('NOT_FOUND')).toBe(404);
    expect(httpStatusOf('CONFLICT')).toBe(409);
    expect(httpStatusOf('SOMETHING_ELSE')).toBe(500);
  });
});
