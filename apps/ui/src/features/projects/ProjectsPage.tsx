// The project list (create, open, activate, rename, delete, export, import) and the welcome
// screen shown when there is no project yet.
import { useRef, useState } from "react";
import { useProjects } from "../../api/queries";
import { fieldMessage } from "../../api/errors";
import { ErrorNote, FieldError } from "../../components/ErrorNote";
import { ConfirmDialog } from "../../components/Modal";
import { Link, navigate } from "../../lib/router";
import { useProjectMutations } from "./projectActions";

export function Welcome() {
  return (
    <div className="page welcome">
      <h1>Welcome to visprompt</h1>
      <p>
        Mark an object on one frame, and visprompt finds and segments objects like it in every frame
        of a live video. Start with a project: it holds your labels, prompts, sources, model
        settings and sinks.
      </p>
      <CreateProject />
      <ImportProject />
    </div>
  );
}

function CreateProject() {
  const [name, setName] = useState("");
  const { create } = useProjectMutations();
  return (
    <form
      className="card"
      onSubmit={(event) => {
        event.preventDefault();
        create.mutate(name.trim(), {
          onSuccess: (project) => {
            setName("");
            navigate(`/projects/${project.id}/labels`);
          },
        });
      }}
    >
      <h2>New project</h2>
      <div className="row">
        <input
          aria-label="Project name"
          placeholder="Project name"
          value={name}
          onChange={(event) => setName(event.target.value)}
        />
        <button type="submit" className="primary" disabled={create.isPending}>
          Create project
        </button>
      </div>
      <FieldError message={fieldMessage(create.error, "name")} />
      {!fieldMessage(create.error, "name") && <ErrorNote error={create.error} />}
    </form>
  );
}

function ImportProject() {
  const input = useRef<HTMLInputElement>(null);
  const [name, setName] = useState("");
  const { importArchive } = useProjectMutations();
  return (
    <form
      className="card"
      onSubmit={(event) => {
        event.preventDefault();
        const file = input.current?.files?.[0];
        if (!file) return;
        importArchive.mutate(
          { file, name: name.trim() || undefined },
          {
            onSuccess: () => {
              setName("");
              if (input.current) input.current.value = "";
            },
          },
        );
      }}
    >
      <h2>Import a project</h2>
      <p className="muted">An archive made by Export. It becomes a new, inactive project.</p>
      <div className="row">
        <input ref={input} type="file" accept=".zip,application/zip" aria-label="Project archive" />
        <input
          aria-label="Imported project name"
          placeholder="Name (optional)"
          value={name}
          onChange={(event) => setName(event.target.value)}
        />
        <button type="submit" disabled={importArchive.isPending}>
          Import
        </button>
      </div>
      {importArchive.isSuccess && (
        <p className="ok-note">
          Imported as <Link to={`/projects/${importArchive.data.id}/live`}>{importArchive.data.name}</Link>.
        </p>
      )}
      <ErrorNote error={importArchive.error} />
    </form>
  );
}

export function ProjectsPage() {
  const projects = useProjects();
  const actions = useProjectMutations();
  const [renaming, setRenaming] = useState<{ id: string; name: string } | null>(null);
  const [deleting, setDeleting] = useState<{ id: string; name: string } | null>(null);

  if (projects.data && projects.data.length === 0) return <Welcome />;
  return (
    <div className="page">
      <h1>Projects</h1>
      <ErrorNote error={projects.error} />
      <table className="list">
        <thead>
          <tr>
            <th>Name</th>
            <th>State</th>
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {projects.data?.map((project) => (
            <tr key={project.id} data-testid="project-row">
              <td>
                {renaming?.id === project.id ? (
                  <form
                    className="row"
                    onSubmit={(event) => {
                      event.preventDefault();
                      actions.rename.mutate(renaming, { onSuccess: () => setRenaming(null) });
                    }}
                  >
                    <input
                      aria-label="New project name"
                      autoFocus
                      value={renaming.name}
                      onChange={(event) => setRenaming({ ...renaming, name: event.target.value })}
                    />
                    <button type="submit" className="small primary">
                      Save
                    </button>
                    <button type="button" className="small" onClick={() => setRenaming(null)}>
                      Cancel
                    </button>
                  </form>
                ) : (
                  <Link to={`/projects/${project.id}/live`}>{project.name}</Link>
                )}
              </td>
              <td>{project.active ? <span className="chip state-running">active</span> : <span className="muted">inactive</span>}</td>
              <td className="muted">{new Date(project.created_at).toLocaleString()}</td>
              <td className="actions">
                {!project.active && (
                  <button type="button" className="small" onClick={() => actions.activate.mutate(project.id)}>
                    Activate
                  </button>
                )}
                <button type="button" className="small" onClick={() => setRenaming({ id: project.id, name: project.name })}>
                  Rename
                </button>
                <button
                  type="button"
                  className="small"
                  onClick={() => actions.exportArchive.mutate({ id: project.id, name: project.name })}
                >
                  Export
                </button>
                <button type="button" className="small danger" onClick={() => setDeleting(project)}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <ErrorNote error={actions.rename.error} prefix="Rename" />
      <ErrorNote error={actions.activate.error} prefix="Activate" />
      <ErrorNote error={actions.exportArchive.error} prefix="Export" />
      <div className="two-columns">
        <CreateProject />
        <ImportProject />
      </div>
      {deleting && (
        <ConfirmDialog
          title="Delete project"
          message={
            <>
              Delete <strong>{deleting.name}</strong> with all its labels, prompts, sources, sinks
              and model settings? This cannot be undone.
            </>
          }
          busy={actions.remove.isPending}
          error={<ErrorNote error={actions.remove.error} />}
          onCancel={() => setDeleting(null)}
          onConfirm={() => actions.remove.mutate(deleting.id, { onSuccess: () => setDeleting(null) })}
        />
      )}
    </div>
  );
}
