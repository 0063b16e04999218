// The event-stream parser, fed in arbitrary chunks as the network delivers them.
import { describe, expect, it } from "vitest";
import { SseParser } from "./sse";

describe("SseParser", () => {
  it("splits events across chunk boundaries, joins data lines, skips comments", () => {
    const parser = new SseParser();
    const text = 'event: pipeline\ndata: {"a":1}\n\n: keep-alive\n\nevent: metrics\r\ndata: line1\r\ndata: line2\r\n\r\ndata: plain\n\n';
    const events = [];
    for (let i = 0; i < text.length; i += 5) events.push(...parser.push(text.slice(i, i + 5)));
    expect(events).toEqual([
      { event: "pipeline", data: '{"a":1}' },
      { event: "metrics", data: "line1\nline2" },
      { event: "message", data: "plain" },
    ]);
  });

  it("holds an unfinished event until its blank line arrives", () => {
    const parser = new SseParser();
    expect(parser.push("event: entity\ndata: x")).toEqual([]);
    expect(parser.push("\n")).toEqual([]);
    expect(parser.push("\n")).toEqual([{ event: "entity", data: "x" }]);
  });
});
