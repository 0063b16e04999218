// A Server-Sent Events reader over fetch. EventSource cannot send an Authorization header, and
// the event stream needs one when the server has an API token, so the stream is read with fetch
// and split into events here.

export interface SseEvent {
  event: string;
  data: string;
}

/**
 * Incremental parser: feed it text as it arrives, get back the events completed so far. Keeps the
 * unfinished tail between calls. Follows the SSE format: `event:`/`data:` lines, a blank line ends
 * an event, lines starting with `:` are comments, several `data:` lines join with newlines.
 */
export class SseParser {
  private buffer = "";
  private eventName = "";
  private dataLines: string[] = [];

  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const events: SseEvent[] = [];
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      // A CR at the very end may be the first half of a CRLF split across chunks: wait.
      if (this.buffer[newline] === "\r" && newline === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, newline);
      const breakLength = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + breakLength);
      if (line === "") {
        if (this.dataLines.length > 0) {
          events.push({ event: this.eventName || "message", data: this.dataLines.join("\n") });
        }
        this.eventName = "";
        this.dataLines = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.eventName = value;
      else if (field === "data") this.dataLines.push(value);
    }
    return events;
  }
}

/**
 * Reads the stream at `url` until `signal` aborts, calling `onEvent` per event; reconnects after
 * `retryMs` when the connection drops. `onStatus` reports whether the stream is open.
 */
export async function followEventStream(
  url: string,
  headers: () => Record<string, string>,
  onEvent: (event: SseEvent) => void,
  onStatus: (open: boolean, error?: string) => void,
  signal: AbortSignal,
  retryMs = 3000,
): Promise<void> {
  while (!signal.aborted) {
    try {
      const response = await fetch(url, {
        headers: { Accept: "text/event-stream", ...headers() },
        signal,
      });
      if (!response.ok || !response.body) {
        throw new Error(`event stream answered ${response.status}`);
      }
      onStatus(true);
      const parser = new SseParser();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value).forEach(onEvent);
      }
      onStatus(false, "event stream closed");
    } catch (error) {
      if (signal.aborted) return;
      onStatus(false, error instanceof Error ? error.message : String(error));
    }
    await new Promise((resolve) => setTimeout(resolve, retryMs));
  }
}
