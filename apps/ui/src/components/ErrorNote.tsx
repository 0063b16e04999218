// Shows an error where it happened: the API's message (and the field it blames) in a red note.
import { describeError } from "../api/errors";

export function ErrorNote({ error, prefix }: { error: unknown; prefix?: string }) {
  if (!error) return null;
  const { message, field } = describeError(error);
  return (
    <div className="error-note" role="alert">
      {prefix ? <strong>{prefix}: </strong> : null}
      {message}
      {field && !message.startsWith(field) ? <span className="error-field"> (field {field})</span> : null}
    </div>
  );
}

/** A message under one input, when the error blames that input. */
export function FieldError({ message }: { message?: string }) {
  if (!message) return null;
  return (
    <div className="field-error" role="alert">
      {message}
    </div>
  );
}
