import { z } from 'zod';

type JsonSchema = Record<string, unknown>;

/**
 * JSON Schema of a tool's input (`io: 'input'`) or output, from zod's own converter. Every object
 * without an explicit `additionalProperties` gets `false`: inputs are strict at every depth.
 */
export function toolJsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const json = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  delete json.$schema;
  closeObjects(json);
  return json;
}

function closeObjects(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) closeObjects(item);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const obj = node as JsonSchema;
  if (obj.type === 'object' && obj.properties !== undefined && !('additionalProperties' in obj)) {
    obj.additionalProperties = false;
  }
  for (const value of Object.values(obj)) closeObjects(value);
}
