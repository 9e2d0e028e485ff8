// A server-sent events parser, as the HTML standard's EventSource parses a stream:
// lines end with CRLF, LF or CR (a line ending in CR is complete at once, and an LF
// opening the next chunk is that CR's); a blank line dispatches the event; "data" lines join with
// LF; lines starting with ":" are comments; "retry" sets the reconnection delay.

export class SseParser {
  constructor(onEvent, onRetry) {
    this.onEvent = onEvent;       // (type, data)
    this.onRetry = onRetry;       // (milliseconds)
    this.buffer = "";
    this.afterCR = false;
    this.event = "";
    this.data = [];
  }

  push(chunk) {
    if (!chunk) return;
    if (this.afterCR && chunk[0] === "\n") chunk = chunk.slice(1);
    const text = this.buffer + chunk;
    const lines = text.split(/\r\n|\r|\n/);
    this.buffer = lines.pop();
    this.afterCR = text.endsWith("\r");
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") {
      if (this.data.length) this.onEvent(this.event || "message", this.data.join("\n"));
      this.event = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "retry" && /^\d+$/.test(value)) this.onRetry(Number(value));
  }
}
