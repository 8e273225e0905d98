/**
 * An incremental parser for `text/event-stream` bodies: feed it chunks, get each event's data.
 */
export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/** Parse a stream of chunks; calls `onEvent` per complete event. */
export function createSseParser(onEvent: (event: SseEvent) => void): {
  push(chunk: string): void;
} {
  let buffer = '';
  let data: string[] = [];
  let event = 'message';
  let id: string | undefined;
  const dispatch = () => {
    if (data.length > 0) onEvent({ event, data: data.join('\n'), ...(id ? { id } : {}) });
    data = [];
    event = 'message';
  };
  return {
    push(chunk) {
      buffer += chunk;
      let at: number;
      while ((at = buffer.search(/\r\n|\n|\r/)) !== -1) {
        // A lone CR at the end may be the first half of a CRLF split across chunks.
        if (at === buffer.length - 1 && buffer.endsWith('\r')) break;
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + (buffer.startsWith('\r\n', at) ? 2 : 1));
        if (line === '') {
          dispatch();
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') data.push(value);
        else if (field === 'event') event = value;
        else if (field === 'id') id = value;
      }
    },
  };
}
