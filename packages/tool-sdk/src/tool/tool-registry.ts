import type { McpToolDefinition } from '../mcp/protocol.js';
import { ToolSdkError } from '../errors/tool-sdk-error.js';
import type { AnyTool } from './define-tool.js';
import { toolJsonSchema } from './json-schema.js';

/** The tools of one server, with everything MCP needs computed once. */
export interface ToolRegistry {
  get(name: string): AnyTool | undefined;
  readonly tools: readonly AnyTool[];
  /** The `tools/list` result. */
  readonly listResult: { tools: McpToolDefinition[] };
  /** The same result as JSON, so a `tools/list` reply costs a string concatenation. */
  readonly listResultJson: string;
}

/** Build the registry once at start-up; names must be unique. */
export function createToolRegistry(tools: readonly AnyTool[]): ToolRegistry {
  const byName = new Map<string, AnyTool>();
  const definitions: McpToolDefinition[] = [];
  for (const tool of tools) {
    if (tool.kind !== 'keel-tool') {
      throw new ToolSdkError('INVALID_TOOL_DEFINITION', 'Register tools made with defineTool()');
    }
    if (byName.has(tool.name)) {
      throw new ToolSdkError('INVALID_TOOL_DEFINITION', `Two tools are named "${tool.name}"`);
    }
    byName.set(tool.name, tool);
    definitions.push(describeTool(tool));
  }
  const listResult = { tools: definitions };
  return {
    get: (name) => byName.get(name),
    tools,
    listResult,
    listResultJson: JSON.stringify(listResult),
  };
}

function describeTool(tool: AnyTool): McpToolDefinition {
  const definition: McpToolDefinition = {
    name: tool.name,
    description: tool.description,
    inputSchema: toolJsonSchema(tool.input, 'input') as McpToolDefinition['inputSchema'],
  };
  if (tool.title !== undefined) definition.title = tool.title;
  if (tool.output !== undefined) {
    definition.outputSchema = toolJsonSchema(
      tool.output,
      'output',
    ) as McpToolDefinition['outputSchema'];
  }
  const a = tool.annotations;
  if (a !== undefined || tool.title !== undefined) {
    const annotations: NonNullable<McpToolDefinition['annotations']> = {};
    if (tool.title !== undefined) annotations.title = tool.title;
    if (a?.readOnly !== undefined) annotations.readOnlyHint = a.readOnly;
    if (a?.destructive !== undefined) annotations.destructiveHint = a.destructive;
    if (a?.idempotent !== undefined) annotations.idempotentHint = a.idempotent;
    if (a?.openWorld !== undefined) annotations.openWorldHint = a.openWorld;
    definition.annotations = annotations;
  }
  if (tool.errors !== undefined && Object.keys(tool.errors).length > 0) {
    definition._meta = { 'dev.keel/errors': tool.errors };
  }
  return definition;
}
