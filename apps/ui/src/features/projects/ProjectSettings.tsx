// One project's own settings: rename, activate or deactivate, export, delete.
import { useState } from "react";
import { useProject } from "../../api/queries";
import { fieldMessage } from "../../api/errors";
import { ErrorNote, FieldError } from "../../components/ErrorNote";
import { ConfirmDialog } from "../../components/Modal";
import { navigate } from "../../lib/router";
import { useProjectMutations } from "./projectActions";

export function ProjectSettings({ projectId }: { projectId: string }) {
  const project = useProject(projectId);
  const actions = useProjectMutations();
  const [name, setName] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  if (project.error) return <ErrorNote error={project.error} prefix="Project" />;
  if (!project.data) return <p className="muted">Loading…</p>;
  const p = project.data;
  return (
    <div className="page">
      <h1>Project {p.name}</h1>
      <form
        className="card"
        onSubmit={(event) => {
          event.preventDefault();
          actions.rename.mutate(
            { id: p.id, name: (name ?? p.name).trim() },
            { onSuccess: () => { setName(null); void project.refetch(); } },
          );
        }}
      >
        <h2>Name</h2>
        <div className="row">
          <input aria-label="Project name" value={name ?? p.name} onChange={(e) => setName(e.target.value)} />
          <button type="submit" className="primary" disabled={actions.rename.isPending}>
            Rename
          </button>
        </div>
        <FieldError message={fieldMessage(actions.rename.error, "name")} />
        {!fieldMessage(actions.rename.error, "name") && <ErrorNote error={actions.rename.error} />}
      </form>
      <div className="card">
        <h2>Live pipeline</h2>
        <p>
          {p.active
            ? "This is the active project: its pipeline runs."
            : "This project is inactive. Only the active project runs its pipeline."}
        </p>
        {p.active ? (
          <button type="button" onClick={() => actions.deactivate.mutate(p.id, { onSuccess: () => void project.refetch() })}>
            Deactivate
          </button>
        ) : (
          <button type="button" className="primary" onClick={() => actions.activate.mutate(p.id, { onSuccess: () => void project.refetch() })}>
            Activate
          </button>
        )}
        <ErrorNote error={actions.activate.error ?? actions.deactivate.error} />
      </div>
      <div className="card">
        <h2>Archive</h2>
        <p className="muted">A zip with labels, prompts and their frames, sources, sinks and model settings.</p>
        <button type="button" onClick={() => actions.exportArchive.mutate({ id: p.id, name: p.name })} disabled={actions.exportArchive.isPending}>
          Export project
        </button>
        {actions.exportArchive.isSuccess && <span className="ok-note"> Saved {actions.exportArchive.data}</span>}
        <ErrorNote error={actions.exportArchive.error} />
      </div>
      <div className="card">
        <h2>Delete</h2>
        <button type="button" className="danger" onClick={() => setConfirming(true)}>
          Delete project
        </button>
      </div>
      {confirming && (
        <ConfirmDialog
          title="Delete project"
          message={<>Delete <strong>{p.name}</strong> and everything it holds? This cannot be undone.</>}
          busy={actions.remove.isPending}
          error={<ErrorNote error={actions.remove.error} />}
          onCancel={() => setConfirming(false)}
          onConfirm={() => actions.remove.mutate(p.id, { onSuccess: () => navigate("/projects") })}
        />
      )}
    </div>
  );
}
