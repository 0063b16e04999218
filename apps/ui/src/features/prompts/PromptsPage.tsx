// Prompts of a project: visual prompts as thumbnails (open to edit, delete), starting a new one
// from an uploaded image (capturing is on the live view), and text prompts per label.
import { useRef, useState } from "react";
import { useMutation } from "@tanstack/react-query";
import { api, call, type Schemas } from "../../api/client";
import { keys, useInvalidate, useLabels, usePrompts } from "../../api/queries";
import { ErrorNote } from "../../components/ErrorNote";
import { ConfirmDialog } from "../../components/Modal";
import { LabelChip } from "../../components/LabelChip";
import { Link, navigate } from "../../lib/router";
import { fromApiAnnotations } from "./editorState";
import { ShapeView } from "./ShapeView";
import { useFrameImage } from "./useFrameImage";

type VisualPrompt = Extract<Schemas["Prompt"], { type: "visual" }>;
type TextPrompt = Extract<Schemas["Prompt"], { type: "text" }>;

function usePromptDelete(projectId: string) {
  const invalidate = useInvalidate();
  return useMutation({
    mutationFn: (promptId: string) =>
      call(
        api.DELETE("/api/v1/projects/{project_id}/prompts/{prompt_id}", {
          params: { path: { project_id: projectId, prompt_id: promptId } },
        }),
      ),
    onSuccess: () => invalidate(keys.prompts(projectId)),
  });
}

export function PromptsPage({ projectId }: { projectId: string }) {
  const prompts = usePrompts(projectId);
  const remove = usePromptDelete(projectId);
  const [deleting, setDeleting] = useState<string | null>(null);
  const visual = (prompts.data?.filter((p) => p.type === "visual") ?? []) as VisualPrompt[];
  const text = (prompts.data?.filter((p) => p.type === "text") ?? []) as TextPrompt[];
  return (
    <div className="page">
      <div className="row">
        <h1>Prompts</h1>
        <span className="spacer" />
        <Link to={`/projects/${projectId}/live`} className="button">
          Capture from live view
        </Link>
        <UploadFrame projectId={projectId} />
      </div>
      <ErrorNote error={prompts.error} />
      <h2>Visual prompts</h2>
      {visual.length === 0 && <p className="muted">None yet. Capture a frame or upload an image, then mark the objects.</p>}
      <div className="prompt-grid">
        {visual.map((prompt) => (
          <PromptCard key={prompt.id} projectId={projectId} prompt={prompt} onDelete={() => setDeleting(prompt.id)} />
        ))}
      </div>
      <TextPrompts projectId={projectId} prompts={text} onDelete={(id) => setDeleting(id)} />
      {deleting && (
        <ConfirmDialog
          title="Delete prompt"
          message="Delete this prompt (and the frame it uses)? The model is fitted again without it."
          busy={remove.isPending}
          error={<ErrorNote error={remove.error} />}
          onCancel={() => setDeleting(null)}
          onConfirm={() => remove.mutate(deleting, { onSuccess: () => setDeleting(null) })}
        />
      )}
    </div>
  );
}

function UploadFrame({ projectId }: { projectId: string }) {
  const input = useRef<HTMLInputElement>(null);
  const upload = useMutation({
    mutationFn: (file: File) =>
      call(
        api.POST("/api/v1/projects/{project_id}/frames/upload", {
          params: { path: { project_id: projectId } },
          body: file as unknown as string,
          bodySerializer: (body: unknown) => body as Blob,
          headers: { "Content-Type": file.type === "image/png" ? "image/png" : "image/jpeg" },
        }),
      ),
    onSuccess: (frame) => navigate(`/projects/${projectId}/prompts/new?frame=${frame.id}`),
  });
  return (
    <span>
      <button type="button" onClick={() => input.current?.click()} disabled={upload.isPending}>
        Upload image
      </button>
      <input
        ref={input}
        type="file"
        accept="image/jpeg,image/png"
        hidden
        aria-label="Reference image"
        onChange={(e) => {
          const file = e.target.files?.[0];
          if (file) upload.mutate(file);
          e.target.value = "";
        }}
      />
      <ErrorNote error={upload.error} prefix="Upload" />
    </span>
  );
}

function PromptCard({ projectId, prompt, onDelete }: { projectId: string; prompt: VisualPrompt; onDelete: () => void }) {
  const image = useFrameImage(projectId, prompt.frame_id);
  const labels = useLabels(projectId);
  const annotations = fromApiAnnotations(prompt.annotations);
  const labelIds = [...new Set(prompt.annotations.map((a) => a.label_id))];
  return (
    <div className="prompt-card" data-testid="prompt-card">
      <Link to={`/projects/${projectId}/prompts/${prompt.id}`} title="Open to edit">
        {image.data ? (
          <svg viewBox={`0 0 ${image.data.width} ${image.data.height}`} className="prompt-thumb">
            <image href={image.data.url} width={image.data.width} height={image.data.height} />
            {annotations.map((a) => (
              <ShapeView key={a.id} shape={a.shape} color={labels.data?.find((l) => l.id === a.labelId)?.color ?? "#999999"} pointRadius={image.data!.width / 80} />
            ))}
          </svg>
        ) : (
          <div className="prompt-thumb placeholder">{image.error ? "image unavailable" : "…"}</div>
        )}
      </Link>
      <div className="row wrap">
        {labelIds.map((id) => {
          const label = labels.data?.find((l) => l.id === id);
          return label ? <LabelChip key={id} name={label.name} color={label.color} /> : null;
        })}
        <span className="muted small-text">{prompt.annotations.length} shapes</span>
        <span className="spacer" />
        <button type="button" className="small danger" onClick={onDelete}>
          Delete
        </button>
      </div>
    </div>
  );
}

/** Text prompts: phrases each tied to a label, for algorithms that take text. */
function TextPrompts({ projectId, prompts, onDelete }: { projectId: string; prompts: TextPrompt[]; onDelete: (id: string) => void }) {
  const labels = useLabels(projectId);
  const invalidate = useInvalidate();
  const [editing, setEditing] = useState<{ id?: string; phrases: Schemas["TextPhrase"][] } | null>(null);
  const save = useMutation({
    mutationFn: ({ id, phrases }: { id?: string; phrases: Schemas["TextPhrase"][] }) => {
      const body: Schemas["PromptBody"] = { type: "text", phrases };
      return id
        ? call(api.PUT("/api/v1/projects/{project_id}/prompts/{prompt_id}", { params: { path: { project_id: projectId, prompt_id: id } }, body }))
        : call(api.POST("/api/v1/projects/{project_id}/prompts", { params: { path: { project_id: projectId } }, body }));
    },
    onSuccess: () => {
      invalidate(keys.prompts(projectId));
      setEditing(null);
    },
  });
  const firstLabel = labels.data?.[0]?.id ?? "";
  return (
    <section>
      <h2>Text prompts</h2>
      <p className="muted small-text">Phrases naming what to find, each for a label; used by algorithms that accept text.</p>
      <ul className="text-prompts">
        {prompts.map((prompt) => (
          <li key={prompt.id} data-testid="text-prompt">
            {prompt.phrases.map((phrase, i) => {
              const label = labels.data?.find((l) => l.id === phrase.label_id);
              return (
                <span key={i} className="phrase">
                  {label && <LabelChip name={label.name} color={label.color} />} “{phrase.text}”
                </span>
              );
            })}
            <span className="spacer" />
            <button type="button" className="small" onClick={() => setEditing({ id: prompt.id, phrases: prompt.phrases })}>
              Edit
            </button>
            <button type="button" className="small danger" onClick={() => onDelete(prompt.id)}>
              Delete
            </button>
          </li>
        ))}
      </ul>
      {editing ? (
        <form
          className="card form"
          onSubmit={(e) => {
            e.preventDefault();
            save.mutate({ id: editing.id, phrases: editing.phrases.map((p) => ({ ...p, text: p.text.trim() })) });
          }}
        >
          {editing.phrases.map((phrase, i) => (
            <div className="row" key={i}>
              <select
                aria-label="Phrase label"
                value={phrase.label_id}
                onChange={(e) => setEditing({ ...editing, phrases: editing.phrases.map((p, j) => (j === i ? { ...p, label_id: e.target.value } : p)) })}
              >
                {labels.data?.map((l) => (
                  <option key={l.id} value={l.id}>
                    {l.name}
                  </option>
                ))}
              </select>
              <input
                aria-label="Phrase"
                placeholder="e.g. a red mug"
                value={phrase.text}
                onChange={(e) => setEditing({ ...editing, phrases: editing.phrases.map((p, j) => (j === i ? { ...p, text: e.target.value } : p)) })}
              />
              <button type="button" className="small" onClick={() => setEditing({ ...editing, phrases: editing.phrases.filter((_, j) => j !== i) })}>
                ✕
              </button>
            </div>
          ))}
          <div className="row">
            <button type="button" className="small" onClick={() => setEditing({ ...editing, phrases: [...editing.phrases, { label_id: firstLabel, text: "" }] })}>
              Add phrase
            </button>
            <span className="spacer" />
            <button type="submit" className="primary" disabled={save.isPending || editing.phrases.length === 0}>
              Save text prompt
            </button>
            <button type="button" onClick={() => { setEditing(null); save.reset(); }}>
              Cancel
            </button>
          </div>
          <ErrorNote error={save.error} />
        </form>
      ) : (
        <button type="button" disabled={!firstLabel} onClick={() => setEditing({ phrases: [{ label_id: firstLabel, text: "" }] })} title={firstLabel ? "" : "Create a label first"}>
          New text prompt
        </button>
      )}
    </section>
  );
}
