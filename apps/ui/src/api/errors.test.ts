// Error formatting: API bodies, the server's parser messages, network failures, field matching.
import { describe, expect, it } from "vitest";
import { ApiError, apiErrorFrom, describeError, fieldMessage, tidyMessage } from "./errors";

describe("API errors", () => {
  it("keeps the body's code, message and field", () => {
    const error = apiErrorFrom(409, { code: "conflict", field: "name", message: 'a label named "x" already exists' });
    expect(error).toBeInstanceOf(ApiError);
    expect(describeError(error)).toEqual({ message: 'a label named "x" already exists', field: "name", status: 409 });
  });

  it("strips the request parser's frame and keeps the server's own wording", () => {
    expect(
      tidyMessage(
        'parse request payload error: failed to parse "LabelCreateBody": expected object, found string (occurred while parsing "X") (occurred while parsing "Y")',
      ),
    ).toBe("expected object, found string");
    expect(tidyMessage("confidence_threshold: must be less than 1")).toBe("confidence_threshold: must be less than 1");
    expect(tidyMessage("config.video_path: must lie inside one of the media roots")).toBe("config.video_path: must lie inside one of the media roots");
  });

  it("falls back to the status when the body is not an error body", () => {
    expect(apiErrorFrom(502, "").message).toBe("The server cannot be reached.");
    expect(apiErrorFrom(500, "<html>oops</html>").message).toBe("<html>oops</html>");
    expect(apiErrorFrom(418, null).message).toBe("The server answered 418.");
  });

  it("explains network failures and plain errors", () => {
    expect(describeError(new TypeError("Failed to fetch")).message).toMatch(/cannot be reached/);
    expect(describeError(new Error("boom")).message).toBe("boom");
    expect(describeError(undefined).message).toBe("Something went wrong.");
  });

  it("matches a blamed field by path or by its last segment", () => {
    const parse = apiErrorFrom(422, { code: "invalid_value", field: "confidence_threshold", message: "m1" });
    const semantic = apiErrorFrom(422, { code: "invalid_value", field: "config.video_path", message: "m2" });
    expect(fieldMessage(parse, "config.confidence_threshold")).toBe("m1");
    expect(fieldMessage(semantic, "config.video_path")).toBe("m2");
    expect(fieldMessage(semantic, "video_path")).toBe("m2");
    expect(fieldMessage(semantic, "config.url")).toBeUndefined();
    expect(fieldMessage(new Error("x"), "name")).toBeUndefined();
  });
});
