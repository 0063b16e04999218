// Model configurations of a project: which algorithm runs (the active configuration), its
// parameters in a form generated from the API schema, model status with download progress, and
// the catalogue of supported algorithms and weights.
import { useMemo, useState } from "react";
import { useMutation } from "@tanstack/react-query";
import { api, call, type Schemas } from "../../api/client";
import { fieldMessage } from "../../api/errors";
import { keys, useInvalidate, useModels, useModelStatus, useSupportedModels } from "../../api/queries";
import { ErrorNote, FieldError } from "../../components/ErrorNote";
import { ConfirmDialog } from "../../components/Modal";
import { apiSchemas } from "./apiSchemas";
import { ParamInputs } from "./ParamForm";
import { algorithmTypes, buildConfig, initialValues, unionMemberFields, validateParam, type FormValue } from "./schemaForm";

type Model = Schemas["Model"];

function useModelMutations(projectId: string) {
  const invalidate = useInvalidate();
  const refresh = () => {
    invalidate(keys.models(projectId));
    invalidate(keys.modelStatus(projectId));
    invalidate(keys.pipeline);
  };
  const save = useMutation({
    mutationFn: ({ id, body }: { id?: string; body: Schemas["ModelBody"] }) =>
      id
        ? call(api.PUT("/api/v1/projects/{project_id}/models/{model_id}", { params: { path: { project_id: projectId, model_id: id } }, body }))
        : call(api.POST("/api/v1/projects/{project_id}/models", { params: { path: { project_id: projectId } }, body })),
    onSuccess: refresh,
  });
  const remove = useMutation({
    mutationFn: (id: string) =>
      call(api.DELETE("/api/v1/projects/{project_id}/models/{model_id}", { params: { path: { project_id: projectId, model_id: id } } })),
    onSuccess: refresh,
  });
  return { save, remove };
}

export function ModelsPage({ projectId }: { projectId: string }) {
  const models = useModels(projectId);
  const supported = useSupportedModels();
  const { save, remove } = useModelMutations(projectId);
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<Model | null>(null);
  const active = models.data?.find((m) => m.active);
  const selected = models.data?.find((m) => m.id === (selectedId ?? active?.id)) ?? models.data?.[0];
  const displayName = (type: string) => supported.data?.models.find((m) => m.model_type === type)?.display_name ?? type;

  return (
    <div className="page">
      <h1>Models</h1>
      <ModelStatusCard projectId={projectId} />
      <ErrorNote error={models.error} />
      <div className="models-layout">
        <section className="card">
          <h2>Configurations</h2>
          <ul className="model-list" data-testid="model-list">
            {models.data?.map((model) => (
              <li key={model.id} className={selected?.id === model.id ? "current" : ""}>
                <button type="button" className="link" onClick={() => { setSelectedId(model.id); setCreating(false); }}>
                  {model.name}
                </button>
                <span className="muted small-text">{displayName(model.config.model_type)}</span>
                <span className="spacer" />
                {model.active ? (
                  <span className="chip state-running">active</span>
                ) : (
                  <button
                    type="button"
                    className="small"
                    onClick={() => save.mutate({ id: model.id, body: { name: model.name, device: model.device, config: model.config, active: true } })}
                  >
                    Use
                  </button>
                )}
              </li>
            ))}
          </ul>
          {!creating && <ErrorNote error={save.error} />}
          <button type="button" className="small" onClick={() => setCreating(true)}>
            New configuration
          </button>
        </section>
        <div>
          {creating ? (
            <ModelForm key="new" projectId={projectId} onDone={(id) => { setCreating(false); if (id) setSelectedId(id); }} displayName={displayName} />
          ) : selected ? (
            <ModelForm key={selected.id + selected.updated_at} projectId={projectId} model={selected} onDelete={() => setDeleting(selected)} displayName={displayName} />
          ) : null}
        </div>
      </div>
      <Catalogue />
      {deleting && (
        <ConfirmDialog
          title="Delete model configuration"
          message={<>Delete the configuration <strong>{deleting.name}</strong>?</>}
          busy={remove.isPending}
          error={<ErrorNote error={remove.error} />}
          onCancel={() => setDeleting(null)}
          onConfirm={() => remove.mutate(deleting.id, { onSuccess: () => { setDeleting(null); setSelectedId(null); } })}
        />
      )}
    </div>
  );
}

function ModelStatusCard({ projectId }: { projectId: string }) {
  const status = useModelStatus(projectId);
  const s = status.data;
  return (
    <section className="card model-status" data-testid="model-status">
      <strong>Model status:</strong> <span className={`chip status-${s?.status ?? "none"}`}>{s?.status ?? "not running"}</span>
      {s?.status === "downloading" && (
        <span className="download">
          {s.model} <progress max={1} value={s.progress ?? undefined} /> {s.progress != null ? `${Math.round(s.progress * 100)}%` : "size unknown"}
        </span>
      )}
      {s?.error_message && <div className="error-note">{s.error_message}</div>}
      <ErrorNote error={status.error} />
    </section>
  );
}

function ModelForm({
  projectId,
  model,
  onDone,
  onDelete,
  displayName,
}: {
  projectId: string;
  model?: Model;
  onDone?: (createdId?: string) => void;
  onDelete?: () => void;
  displayName: (type: string) => string;
}) {
  const { save } = useModelMutations(projectId);
  const types = algorithmTypes(apiSchemas);
  const [modelType, setModelType] = useState<string>(model?.config.model_type ?? "classical");
  const fields = useMemo(() => unionMemberFields(apiSchemas, "ModelConfigBody", modelType), [modelType]);
  const [values, setValues] = useState<Record<string, FormValue>>(() =>
    initialValues(fields, model?.config as Record<string, unknown> | undefined),
  );
  const [name, setName] = useState(model?.name ?? "");
  const [device, setDevice] = useState(model?.device ?? "auto");
  const [active, setActive] = useState(model?.active ?? false);
  const [touched, setTouched] = useState<Record<string, boolean>>({});
  const [submitted, setSubmitted] = useState(false);
  const deviceField = useMemo(
    () => ({ name: "device", title: "Device", kind: "string" as const, pattern: apiSchemas.ModelBody?.properties?.device?.pattern, exclusiveMinimum: false, exclusiveMaximum: false, required: false }),
    [],
  );
  const built = buildConfig({ name: "model_type", value: modelType }, fields, values);
  const deviceError = validateParam(deviceField, device).error;
  // Messages show once a field was edited or a save was tried; the server's own, per field, too.
  const errors: Record<string, string | undefined> = {};
  for (const field of fields) {
    errors[field.name] =
      ((touched[field.name] || submitted) && built.errors[field.name]) || fieldMessage(save.error, `config.${field.name}`);
  }
  const blamedField = fields.some((f) => fieldMessage(save.error, `config.${f.name}`)) || fieldMessage(save.error, "name") || fieldMessage(save.error, "device");

  return (
    <form
      className="card form"
      aria-label="Model configuration"
      onSubmit={(event) => {
        event.preventDefault();
        setSubmitted(true);
        if (!built.config || deviceError) return;
        save.mutate(
          { id: model?.id, body: { name: name.trim(), device, active, config: built.config as Schemas["ModelConfigBody"] } },
          { onSuccess: (saved) => onDone?.(saved.id) },
        );
      }}
    >
      <h2>{model ? model.name : "New configuration"}</h2>
      <div className="row wrap">
        <label>
          Name
          <input aria-label="Configuration name" value={name} onChange={(e) => setName(e.target.value)} />
          <FieldError message={fieldMessage(save.error, "name")} />
        </label>
        <label>
          Algorithm
          <select
            aria-label="Algorithm"
            value={modelType}
            onChange={(e) => {
              const next = e.target.value;
              setModelType(next);
              setValues(initialValues(unionMemberFields(apiSchemas, "ModelConfigBody", next)));
              setTouched({});
            }}
          >
            {types.map((type) => (
              <option key={type} value={type}>
                {displayName(type)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Device
          <input aria-label="Device" value={device} onChange={(e) => setDevice(e.target.value)} placeholder="auto, cpu, cuda-0" />
          <FieldError message={deviceError ? "auto, cpu, cuda[-N] or xpu[-N]" : fieldMessage(save.error, "device")} />
        </label>
        <label className="check">
          <input type="checkbox" checked={active} onChange={(e) => setActive(e.target.checked)} /> Active
        </label>
      </div>
      <h3>Parameters</h3>
      <ParamInputs
        fields={fields}
        values={values}
        errors={errors}
        onChange={(field, value) => {
          setValues({ ...values, [field]: value });
          setTouched({ ...touched, [field]: true });
        }}
      />
      {!blamedField && <ErrorNote error={save.error} />}
      {save.isSuccess && !save.isPending && <span className="ok-note">Saved.</span>}
      <div className="row">
        <button type="submit" className="primary" disabled={save.isPending}>
          {model ? "Save parameters" : "Create configuration"}
        </button>
        <button type="button" onClick={() => { setValues(initialValues(fields)); setTouched({}); }}>
          Reset to defaults
        </button>
        <span className="spacer" />
        {onDone && !model && (
          <button type="button" onClick={() => onDone()}>
            Cancel
          </button>
        )}
        {onDelete && (
          <button type="button" className="danger" onClick={onDelete} disabled={model?.active} title={model?.active ? "The active configuration cannot be deleted" : ""}>
            Delete
          </button>
        )}
      </div>
    </form>
  );
}

function Catalogue() {
  const supported = useSupportedModels();
  const formatSize = (bytes: number) => (bytes > 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.round(bytes / 1e6)} MB`);
  return (
    <details className="card catalogue">
      <summary>Supported algorithms and weights</summary>
      <ErrorNote error={supported.error} />
      <table className="list">
        <thead>
          <tr>
            <th>Algorithm</th>
            <th>Prompts</th>
            <th>Needs weights</th>
          </tr>
        </thead>
        <tbody>
          {supported.data?.models.map((m) => (
            <tr key={m.model_type}>
              <td>{m.display_name}</td>
              <td>{m.supported_prompt_types.join(", ")}</td>
              <td>{m.needs_weights ? "yes" : "no"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <table className="list">
        <thead>
          <tr>
            <th>Weights</th>
            <th>Kind</th>
            <th>Size</th>
            <th>Licence</th>
            <th>On this machine</th>
          </tr>
        </thead>
        <tbody>
          {supported.data?.weights.map((w) => (
            <tr key={w.id}>
              <td title={w.repository}>
                {w.name} <span className="muted mono small-text">{w.id}</span>
              </td>
              <td>{w.kind}</td>
              <td>{formatSize(w.size_bytes)}</td>
              <td>
                {w.licence}
                {w.gated ? " (gated: needs HF_TOKEN)" : ""}
              </td>
              <td>{w.present_locally ? "✓ present" : "download on first use"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}
