// The component schemas of the checked-in API document, for forms generated from them. Only
// `components` is imported, so the bundle does not carry the paths.
import { components } from "../../../../../openapi/openapi.json";
import type { Schemas } from "./schemaForm";

export const apiSchemas = components.schemas as unknown as Schemas;
