// Labels of a project: create (name, colour), rename, recolour, delete (refused while a prompt
// uses the label; the server says so).
import { useState } from "react";
import { useMutation } from "@tanstack/react-query";
import { api, call, type Schemas } from "../../api/client";
import { fieldMessage } from "../../api/errors";
import { keys, useInvalidate, useLabels } from "../../api/queries";
import { ErrorNote, FieldError } from "../../components/ErrorNote";
import { ConfirmDialog } from "../../components/Modal";
import { LabelChip } from "../../components/LabelChip";

export function useLabelMutations(projectId: string) {
  const invalidate = useInvalidate();
  const refresh = () => invalidate(keys.labels(projectId));
  const create = useMutation({
    mutationFn: (body: Schemas["LabelCreateBody"]) =>
      call(
        api.POST("/api/v1/projects/{project_id}/labels", {
          params: { path: { project_id: projectId } },
          body,
        }),
      ),
    onSuccess: refresh,
  });
  const update = useMutation({
    mutationFn: ({ id, ...body }: { id: string } & Schemas["LabelUpdateBody"]) =>
      call(
        api.PUT("/api/v1/projects/{project_id}/labels/{label_id}", {
          params: { path: { project_id: projectId, label_id: id } },
          body,
        }),
      ),
    onSuccess: refresh,
  });
  const remove = useMutation({
    mutationFn: (id: string) =>
      call(
        api.DELETE("/api/v1/projects/{project_id}/labels/{label_id}", {
          params: { path: { project_id: projectId, label_id: id } },
        }),
      ),
    onSuccess: refresh,
  });
  return { create, update, remove };
}

/** The create-a-label form; also used inside the annotation editor. */
export function NewLabelForm({ projectId, onCreated }: { projectId: string; onCreated?: (id: string) => void }) {
  const { create } = useLabelMutations(projectId);
  const [name, setName] = useState("");
  const [color, setColor] = useState("");
  return (
    <form
      className="new-label"
      onSubmit={(event) => {
        event.preventDefault();
        create.mutate(
          { name: name.trim(), color: color || undefined },
          {
            onSuccess: (label) => {
              setName("");
              setColor("");
              onCreated?.(label.id);
            },
          },
        );
      }}
    >
      <div className="row">
        <input aria-label="Label name" placeholder="New label" value={name} onChange={(e) => setName(e.target.value)} />
        <input
          type="color"
          aria-label="Label colour"
          title="Colour (left unset, the server picks an unused one)"
          value={color || "#888888"}
          onChange={(e) => setColor(e.target.value)}
        />
        <button type="submit" className="primary" disabled={create.isPending}>
          Add label
        </button>
      </div>
      <FieldError message={fieldMessage(create.error, "name") ?? fieldMessage(create.error, "color")} />
      {!fieldMessage(create.error, "name") && !fieldMessage(create.error, "color") && <ErrorNote error={create.error} />}
    </form>
  );
}

export function LabelsPage({ projectId }: { projectId: string }) {
  const labels = useLabels(projectId);
  const { update, remove } = useLabelMutations(projectId);
  const [editing, setEditing] = useState<{ id: string; name: string } | null>(null);
  const [deleting, setDeleting] = useState<Schemas["Label"] | null>(null);
  return (
    <div className="page">
      <h1>Labels</h1>
      <p className="muted">Each annotation of a prompt belongs to a label; detections carry its name and colour.</p>
      <ErrorNote error={labels.error} />
      <div className="card">
        <NewLabelForm projectId={projectId} />
      </div>
      <table className="list">
        <tbody>
          {labels.data?.map((label) => (
            <tr key={label.id} data-testid="label-row">
              <td style={{ width: 40 }}>
                <input
                  type="color"
                  aria-label={`Colour of ${label.name}`}
                  value={label.color.toLowerCase()}
                  onChange={(e) => update.mutate({ id: label.id, color: e.target.value })}
                />
              </td>
              <td>
                {editing?.id === label.id ? (
                  <form
                    className="row"
                    onSubmit={(event) => {
                      event.preventDefault();
                      update.mutate(
                        { id: label.id, name: editing.name.trim() },
                        { onSuccess: () => setEditing(null) },
                      );
                    }}
                  >
                    <input
                      aria-label="New label name"
                      autoFocus
                      value={editing.name}
                      onChange={(e) => setEditing({ ...editing, name: e.target.value })}
                    />
                    <button type="submit" className="small primary">Save</button>
                    <button type="button" className="small" onClick={() => setEditing(null)}>Cancel</button>
                  </form>
                ) : (
                  <LabelChip name={label.name} color={label.color} />
                )}
              </td>
              <td className="muted mono">{label.color}</td>
              <td className="actions">
                <button type="button" className="small" onClick={() => setEditing({ id: label.id, name: label.name })}>
                  Rename
                </button>
                <button type="button" className="small danger" onClick={() => setDeleting(label)}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {labels.data?.length === 0 && <p className="muted">No labels yet.</p>}
      <ErrorNote error={update.error} prefix="Label" />
      {deleting && (
        <ConfirmDialog
          title="Delete label"
          message={<>Delete the label <LabelChip name={deleting.name} color={deleting.color} />?</>}
          busy={remove.isPending}
          error={<ErrorNote error={remove.error} />}
          onCancel={() => { setDeleting(null); remove.reset(); }}
          onConfirm={() => remove.mutate(deleting.id, { onSuccess: () => setDeleting(null) })}
        />
      )}
    </div>
  );
}
