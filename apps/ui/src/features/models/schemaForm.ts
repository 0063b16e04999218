// The model-parameter form's logic, generated from the API document: for an algorithm
// (`model_type`), the fields of its configuration schema with their kinds, ranges, choices and
// defaults; validation of what a person typed against them; and the config body to send.
// Nothing here names a parameter, so new parameters in the API appear in the form by themselves.

/** The subset of JSON Schema (OpenAPI 3.0 flavour) the configurations use. */
export interface JsonSchema {
  $ref?: string;
  allOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  type?: string;
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  // OpenAPI 3.0 style: booleans qualifying minimum/maximum.
  exclusiveMinimum?: boolean | number;
  exclusiveMaximum?: boolean | number;
  pattern?: string;
  nullable?: boolean;
  discriminator?: { propertyName: string; mapping?: Record<string, string> };
  title?: string;
  format?: string;
}

export type Schemas = Record<string, JsonSchema>;

export type FieldKind = "number" | "integer" | "boolean" | "enum" | "string";

export interface ParamField {
  name: string;
  title: string;
  kind: FieldKind;
  description?: string;
  defaultValue?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum: boolean;
  exclusiveMaximum: boolean;
  options?: string[];
  pattern?: string;
  required: boolean;
}

/** What the form holds per field: text for numbers and choices, a flag for switches. */
export type FormValue = string | boolean;

function resolve(schemas: Schemas, schema: JsonSchema): JsonSchema {
  let current = schema;
  for (let depth = 0; current.$ref && depth < 10; depth++) {
    const name = current.$ref.replace("#/components/schemas/", "");
    current = { ...schemas[name], ...withoutRef(current) };
  }
  return current;
}

function withoutRef(schema: JsonSchema): JsonSchema {
  const copy = { ...schema };
  delete copy.$ref;
  return copy;
}

/** Merges `allOf` parts (and resolves references) into one object schema. */
function flatten(schemas: Schemas, schema: JsonSchema): JsonSchema {
  const resolved = resolve(schemas, schema);
  if (!resolved.allOf) return resolved;
  const merged: JsonSchema = { ...resolved, properties: { ...(resolved.properties ?? {}) }, required: [...(resolved.required ?? [])] };
  delete merged.allOf;
  for (const part of resolved.allOf) {
    const flat = flatten(schemas, part);
    Object.assign(merged.properties!, flat.properties ?? {});
    merged.required!.push(...(flat.required ?? []));
    for (const key of ["enum", "type", "description", "minimum", "maximum", "pattern"] as const) {
      if (merged[key] === undefined && flat[key] !== undefined) (merged as Record<string, unknown>)[key] = flat[key];
    }
    if (merged.default === undefined && flat.default !== undefined) merged.default = flat.default;
  }
  return merged;
}

/** The algorithms a model configuration can use, from the discriminator of ModelConfigBody. */
export function algorithmTypes(schemas: Schemas, union = "ModelConfigBody"): string[] {
  return Object.keys(schemas[union]?.discriminator?.mapping ?? {});
}

/** "num_foreground_points" → "Num foreground points". */
export function humanise(name: string): string {
  const words = name.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The fields of one member of a discriminated union (e.g. ModelConfigBody's `matcher`). */
export function unionMemberFields(schemas: Schemas, union: string, tag: string): ParamField[] {
  const unionSchema = schemas[union];
  const discriminator = unionSchema?.discriminator;
  const ref = discriminator?.mapping?.[tag];
  if (!discriminator || !ref) return [];
  const member = flatten(schemas, { $ref: ref });
  const required = new Set(member.required ?? []);
  return Object.entries(member.properties ?? {})
    .filter(([name]) => name !== discriminator.propertyName)
    .map(([name, raw]) => fieldFrom(schemas, name, raw, required.has(name)))
    .sort((a, b) => kindOrder(a.kind) - kindOrder(b.kind) || a.name.localeCompare(b.name));
}

/** Choices first, then numbers, then switches: the order the reference system's dialog used. */
function kindOrder(kind: FieldKind): number {
  return { enum: 0, string: 1, number: 2, integer: 2, boolean: 3 }[kind];
}

function fieldFrom(schemas: Schemas, name: string, raw: JsonSchema, required: boolean): ParamField {
  const schema = flatten(schemas, raw);
  let kind: FieldKind = "string";
  if (schema.enum) kind = "enum";
  else if (schema.type === "boolean") kind = "boolean";
  else if (schema.type === "integer") kind = "integer";
  else if (schema.type === "number") kind = "number";
  return {
    name,
    title: humanise(name),
    kind,
    description: schema.description ?? raw.description,
    defaultValue: raw.default ?? schema.default,
    minimum: schema.minimum,
    maximum: schema.maximum,
    exclusiveMinimum: schema.exclusiveMinimum === true,
    exclusiveMaximum: schema.exclusiveMaximum === true,
    options: schema.enum?.map(String),
    pattern: schema.pattern,
    required,
  };
}

/** The range in words, e.g. "0 < x < 1" or "1 to 300", for hints. */
export function describeRange(field: ParamField): string | undefined {
  const { minimum: lo, maximum: hi } = field;
  if (lo === undefined && hi === undefined) return undefined;
  if (lo !== undefined && hi !== undefined) {
    if (field.exclusiveMinimum || field.exclusiveMaximum) {
      return `${lo} ${field.exclusiveMinimum ? "<" : "≤"} value ${field.exclusiveMaximum ? "<" : "≤"} ${hi}`;
    }
    return `${lo} to ${hi}`;
  }
  if (lo !== undefined) return `${field.exclusiveMinimum ? ">" : "≥"} ${lo}`;
  return `${field.exclusiveMaximum ? "<" : "≤"} ${hi}`;
}

/**
 * Checks one value. Returns the value to send (undefined: leave the field out, so the server's
 * default applies) or the message to show under the input.
 */
export function validateParam(field: ParamField, input: FormValue): { value?: unknown; error?: string } {
  if (field.kind === "boolean") return { value: input === true || input === "true" };
  const text = String(input).trim();
  if (text === "") {
    return field.required ? { error: "Required." } : { value: undefined };
  }
  if (field.kind === "enum") {
    return field.options?.includes(text) ? { value: text } : { error: `Choose one of ${field.options?.join(", ")}.` };
  }
  if (field.kind === "string") {
    if (field.pattern && !new RegExp(field.pattern).test(text)) return { error: "Not in the expected form." };
    return { value: text };
  }
  const number = Number(text);
  if (!Number.isFinite(number)) return { error: "Enter a number." };
  if (field.kind === "integer" && !Number.isInteger(number)) return { error: "Enter a whole number." };
  const { minimum: lo, maximum: hi } = field;
  if (lo !== undefined && (field.exclusiveMinimum ? number <= lo : number < lo)) {
    return { error: field.exclusiveMinimum ? `Must be greater than ${lo}.` : `Must be at least ${lo}.` };
  }
  if (hi !== undefined && (field.exclusiveMaximum ? number >= hi : number > hi)) {
    return { error: field.exclusiveMaximum ? `Must be less than ${hi}.` : `Must be at most ${hi}.` };
  }
  return { value: number };
}

/** The form's starting values: a stored configuration's, else the schema defaults (as text). */
export function initialValues(fields: ParamField[], stored?: Record<string, unknown>): Record<string, FormValue> {
  const values: Record<string, FormValue> = {};
  for (const field of fields) {
    const value = stored?.[field.name] ?? field.defaultValue;
    if (field.kind === "boolean") values[field.name] = value === true;
    else values[field.name] = value === undefined || value === null ? "" : String(value);
  }
  return values;
}

/** Validates every field; the configuration to send when all are valid, else the messages. */
export function buildConfig(
  discriminator: { name: string; value: string },
  fields: ParamField[],
  values: Record<string, FormValue>,
): { config?: Record<string, unknown>; errors: Record<string, string> } {
  const config: Record<string, unknown> = { [discriminator.name]: discriminator.value };
  const errors: Record<string, string> = {};
  for (const field of fields) {
    const result = validateParam(field, values[field.name] ?? (field.kind === "boolean" ? false : ""));
    if (result.error) errors[field.name] = result.error;
    else if (result.value !== undefined) config[field.name] = result.value;
  }
  return Object.keys(errors).length ? { errors } : { config, errors };
}
