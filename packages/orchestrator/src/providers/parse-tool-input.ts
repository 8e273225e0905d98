/** Streamed tool-call arguments (JSON text) to the tool input. */

/** Parses streamed tool arguments; unparseable text is passed on as the raw string. */
export function parseToolInput(json: string): unknown {
  if (json.trim() === '') return {};
  try {
    return JSON.parse(json);
  } catch {
    return json;
  }
}
