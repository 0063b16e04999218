// Inputs for the fields of a generated parameter form: a select for choices, a number input with
// its range for numbers, a checkbox for switches; the message under each invalid one.
import { FieldError } from "../../components/ErrorNote";
import { describeRange, type FormValue, type ParamField } from "./schemaForm";

export function ParamInputs({
  fields,
  values,
  errors,
  onChange,
}: {
  fields: ParamField[];
  values: Record<string, FormValue>;
  errors: Record<string, string | undefined>;
  onChange: (name: string, value: FormValue) => void;
}) {
  return (
    <div className="param-grid">
      {fields.map((field) => {
        const id = `param-${field.name}`;
        const hint = [describeRange(field), field.defaultValue !== undefined ? `default ${String(field.defaultValue)}` : undefined]
          .filter(Boolean)
          .join(" · ");
        const error = errors[field.name];
        return (
          <div key={field.name} className={`param ${error ? "invalid" : ""}`} title={field.description}>
            {field.kind === "boolean" ? (
              <label className="check" htmlFor={id}>
                <input id={id} type="checkbox" checked={values[field.name] === true} onChange={(e) => onChange(field.name, e.target.checked)} />
                {field.title}
              </label>
            ) : (
              <>
                <label htmlFor={id}>{field.title}</label>
                {field.kind === "enum" ? (
                  <select id={id} value={String(values[field.name] ?? "")} onChange={(e) => onChange(field.name, e.target.value)}>
                    {!field.required && <option value="">(default)</option>}
                    {field.options?.map((option) => (
                      <option key={option} value={option}>
                        {option}
                      </option>
                    ))}
                  </select>
                ) : (
                  <input
                    id={id}
                    type="text"
                    inputMode={field.kind === "string" ? "text" : "decimal"}
                    value={String(values[field.name] ?? "")}
                    placeholder={field.defaultValue !== undefined ? String(field.defaultValue) : ""}
                    aria-invalid={!!error}
                    onChange={(e) => onChange(field.name, e.target.value)}
                  />
                )}
              </>
            )}
            {hint && <div className="hint">{hint}</div>}
            {field.description && <div className="hint description">{field.description.split("\n").join(" ")}</div>}
            <FieldError message={error} />
          </div>
        );
      })}
    </div>
  );
}
