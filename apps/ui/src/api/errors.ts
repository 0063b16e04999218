// Turns whatever a failed call produced (an API error body, a network failure, a thrown Error)
// into one readable message, plus the field to blame when the server named one, so that forms
// can put the message next to the input that caused it.

/** An error answered by the API: the `{code, message, field?}` body and the HTTP status. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field?: string;

  constructor(status: number, code: string, message: string, field?: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field ?? undefined;
  }
}

/** Builds an ApiError from a response status and whatever its body parsed to. */
export function apiErrorFrom(status: number, body: unknown): ApiError {
  if (body && typeof body === "object" && "message" in body) {
    const b = body as { code?: unknown; message?: unknown; field?: unknown };
    return new ApiError(
      status,
      typeof b.code === "string" ? b.code : "error",
      tidyMessage(String(b.message)),
      typeof b.field === "string" && b.field !== "" ? b.field : undefined,
    );
  }
  const text = typeof body === "string" && body.trim() !== "" ? body.trim() : statusText(status);
  return new ApiError(status, "error", text.slice(0, 300));
}

/**
 * The server words out-of-range values itself ("confidence_threshold: must be less than 1"); its
 * other request-parser messages still carry the parser's frame, e.g. `parse request payload
 * error: failed to parse "LabelCreateBody": … (occurred while parsing "X")`. People need the
 * middle part only.
 */
export function tidyMessage(message: string): string {
  let m = message.replace(/^parse request payload error:\s*/i, "");
  m = m.replace(/^failed to parse "[^"]*":\s*/i, "");
  m = m.replace(/\s*\(occurred while parsing "[^"]*"\)/g, "");
  return m.trim();
}

function statusText(status: number): string {
  switch (status) {
    case 401:
      return "An API token is required.";
    case 404:
      return "Not found.";
    case 413:
      return "The upload is too large for the server.";
    case 502:
    case 503:
    case 504:
      return "The server cannot be reached.";
    default:
      return `The server answered ${status}.`;
  }
}

/** What a screen shows for an error. */
export interface ErrorDescription {
  message: string;
  field?: string;
  status?: number;
}

export function describeError(error: unknown): ErrorDescription {
  if (error instanceof ApiError) {
    return { message: error.message, field: error.field, status: error.status };
  }
  if (error instanceof TypeError && /fetch|network/i.test(error.message)) {
    return { message: "The server cannot be reached. Is visprompt running?" };
  }
  if (error instanceof Error) return { message: error.message };
  if (typeof error === "string") return { message: error };
  return { message: "Something went wrong." };
}

/**
 * The message for one form field, if the error blames it. The server names fields sometimes as
 * a path (`config.video_path`) and sometimes by the last segment only (`confidence_threshold`),
 * so both spellings match.
 */
export function fieldMessage(error: unknown, field: string): string | undefined {
  if (!(error instanceof ApiError) || !error.field) return undefined;
  const blamed = error.field;
  if (blamed === field) return error.message;
  const last = (path: string) => path.split(".").pop();
  if (last(blamed) === last(field) && (!blamed.includes(".") || !field.includes("."))) {
    return error.message;
  }
  return undefined;
}
