import { describe, expect, it } from "vitest";
import { ago, breakerKind, breakerText, countText, prettyJson } from "./display";

describe("prettyJson", () => {
  it("indents objects and JSON text, keeps other text", () => {
    expect(prettyJson({ a: 1, b: [true] })).toBe('{\n  "a": 1,\n  "b": [\n    true\n  ]\n}');
    expect(prettyJson('{"x":null}')).toBe('{\n  "x": null\n}');
    expect(prettyJson("not json")).toBe("not json");
    expect(prettyJson(undefined)).toBe("undefined");
  });
});

describe("ago", () => {
  const now = Date.parse("2026-12-02T10:00:00Z");
  it.each([
    ["2026-12-02T09:59:56Z", "4 s ago"],
    ["2026-12-02T09:57:00Z", "3 min ago"],
    ["2026-12-02T07:00:00Z", "3 h ago"],
    ["2026-11-25T10:00:00Z", "7 d ago"],
    ["2026-12-02T10:00:02Z", "just now"],
    ["2026-12-02T10:05:00Z", "in the future (clock skew)"],
  ])("%s -> %s", (iso, text) => {
    expect(ago(iso, now)).toBe(text);
  });

  it("shows missing and unreadable times as such", () => {
    expect(ago(null, now)).toBe("—");
    expect(ago("yesterday", now)).toBe("yesterday");
  });
});

describe("breakers and counts", () => {
  it("names breaker states", () => {
    expect(breakerText("half_open")).toBe("half-open");
    expect(breakerText("open")).toBe("open");
    expect(breakerKind("closed")).toBe("ok");
    expect(breakerKind("open")).toBe("bad");
    expect(breakerKind("half_open")).toBe("wait");
  });

  it("says unknown for counts the broker could not give", () => {
    expect(countText(null)).toBe("unknown");
    expect(countText(0)).toBe("0");
  });
});
