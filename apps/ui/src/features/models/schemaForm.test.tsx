// The schema-driven parameter form: fields from the real API document, validation against their
// ranges, the body it builds, and the rendered inputs with their messages.
import { describe, expect, it } from "vitest";
import { fireEvent, render, screen } from "@testing-library/react";
import { useState } from "react";
import { apiSchemas } from "./apiSchemas";
import { ParamInputs } from "./ParamForm";
import {
  algorithmTypes,
  buildConfig,
  describeRange,
  initialValues,
  unionMemberFields,
  validateParam,
  type FormValue,
  type Schemas,
} from "./schemaForm";

describe("fields from the API document", () => {
  it("lists the algorithms of the discriminated union", () => {
    expect(algorithmTypes(apiSchemas).sort()).toEqual(["classical", "matcher", "perdino", "soft_matcher"]);
  });

  it("reads kinds, ranges, enums and defaults, leaving out the discriminator", () => {
    const fields = unionMemberFields(apiSchemas, "ModelConfigBody", "matcher");
    const byName = Object.fromEntries(fields.map((f) => [f.name, f]));
    expect(byName.model_type).toBeUndefined();
    expect(byName.confidence_threshold).toMatchObject({ kind: "number", minimum: 0, maximum: 1, exclusiveMinimum: true, exclusiveMaximum: true, defaultValue: 0.75 });
    expect(byName.num_foreground_points).toMatchObject({ kind: "integer", minimum: 1, maximum: 300, defaultValue: 5 });
    expect(byName.encoder_model.kind).toBe("enum");
    expect(byName.encoder_model.options).toContain("dinov2_small");
    expect(byName.encoder_model.defaultValue).toBe("dinov3_small");
    expect(byName.use_mask_refinement).toMatchObject({ kind: "boolean", defaultValue: false });
  });

  it("follows allOf and $ref in a hand-made schema too", () => {
    const schemas: Schemas = {
      Union: { anyOf: [], discriminator: { propertyName: "kind", mapping: { a: "#/components/schemas/A" } } },
      A: { allOf: [{ properties: { kind: { type: "string", enum: ["a"] } } }, { $ref: "#/components/schemas/AParams" }] },
      AParams: { properties: { size: { type: "integer", minimum: 2, maximum: 4 }, mode: { $ref: "#/components/schemas/Mode" } }, required: ["size"] },
      Mode: { enum: ["x", "y"], type: "string" },
    };
    const fields = unionMemberFields(schemas, "Union", "a");
    expect(fields.map((f) => [f.name, f.kind, f.required])).toEqual([
      ["mode", "enum", false],
      ["size", "integer", true],
    ]);
    expect(validateParam(fields[1], "")).toEqual({ error: "Required." });
  });
});

describe("validation", () => {
  const classical = unionMemberFields(apiSchemas, "ModelConfigBody", "classical");
  const field = (name: string) => classical.find((f) => f.name === name)!;

  it("applies exclusive and inclusive bounds", () => {
    const threshold = field("confidence_threshold");
    expect(validateParam(threshold, "1").error).toBe("Must be less than 1.");
    expect(validateParam(threshold, "0").error).toBe("Must be greater than 0.");
    expect(validateParam(threshold, "0.999")).toEqual({ value: 0.999 });
    const minArea = field("min_area");
    expect(validateParam(minArea, "0.01")).toEqual({ value: 0.01 });
    expect(validateParam(minArea, "0.009").error).toBe("Must be at least 0.01.");
    expect(describeRange(threshold)).toBe("0 < value < 1");
    expect(describeRange(minArea)).toBe("0.01 to 1");
  });

  it("wants whole numbers for integers and numbers for numbers", () => {
    expect(validateParam(field("max_detections"), "2.5").error).toBe("Enter a whole number.");
    expect(validateParam(field("max_detections"), "abc").error).toBe("Enter a number.");
    expect(validateParam(field("max_detections"), "1001").error).toBe("Must be at most 1000.");
  });

  it("builds the body with the discriminator, leaving empty optional fields to the server", () => {
    const values = initialValues(classical, { confidence_threshold: 0.3 });
    expect(values.confidence_threshold).toBe("0.3");
    expect(values.max_detections).toBe("20"); // the schema default
    values.min_area = "";
    const built = buildConfig({ name: "model_type", value: "classical" }, classical, values);
    expect(built.config).toEqual({ model_type: "classical", confidence_threshold: 0.3, max_detections: 20 });
    values.max_detections = "0";
    const refused = buildConfig({ name: "model_type", value: "classical" }, classical, values);
    expect(refused.config).toBeUndefined();
    expect(refused.errors).toEqual({ max_detections: "Must be at least 1." });
  });
});

describe("rendered form", () => {
  function Harness() {
    const fields = unionMemberFields(apiSchemas, "ModelConfigBody", "soft_matcher");
    const [values, setValues] = useState<Record<string, FormValue>>(() => initialValues(fields));
    const built = buildConfig({ name: "model_type", value: "soft_matcher" }, fields, values);
    return (
      <>
        <ParamInputs fields={fields} values={values} errors={built.errors} onChange={(n, v) => setValues({ ...values, [n]: v })} />
        <output data-testid="body">{JSON.stringify(built.config ?? null)}</output>
      </>
    );
  }

  it("renders an input per parameter and shows the message under an invalid one", () => {
    render(<Harness />);
    expect(screen.getByLabelText("Encoder model").tagName).toBe("SELECT");
    expect(screen.getByLabelText("Use sampling")).toHaveProperty("type", "checkbox");
    const threshold = screen.getByLabelText("Confidence threshold") as HTMLInputElement;
    expect(threshold.value).toBe("0.42");
    fireEvent.change(threshold, { target: { value: "2" } });
    expect(screen.getByRole("alert").textContent).toBe("Must be less than 1.");
    expect(screen.getByTestId("body").textContent).toBe("null");
    fireEvent.change(threshold, { target: { value: "0.5" } });
    fireEvent.click(screen.getByLabelText("Use sampling"));
    expect(screen.queryByRole("alert")).toBeNull();
    const body = JSON.parse(screen.getByTestId("body").textContent!);
    expect(body).toMatchObject({ model_type: "soft_matcher", confidence_threshold: 0.5, use_sampling: true, encoder_model: "dinov3_small" });
  });
});
