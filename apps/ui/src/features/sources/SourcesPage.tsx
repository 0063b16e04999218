// Sources of a project: add and edit each kind (USB camera, video file, images folder, RTSP,
// sample dataset, synthetic), switch the active one, delete; browse the frames of a navigable
// active source (images folder, sample dataset).
import { useState } from "react";
import { useMutation } from "@tanstack/react-query";
import { api, call, type Schemas } from "../../api/client";
import { fieldMessage } from "../../api/errors";
import { keys, useAvailableSources, useDatasets, useInvalidate, usePipeline, useSources } from "../../api/queries";
import { ErrorNote, FieldError } from "../../components/ErrorNote";
import { ConfirmDialog } from "../../components/Modal";
import { FrameBrowser } from "./FrameBrowser";

type SourceConfig = Schemas["SourceConfigBody"];
type SourceType = SourceConfig["source_type"];

export const SOURCE_TYPES: { type: SourceType; title: string }[] = [
  { type: "synthetic", title: "Synthetic scene" },
  { type: "usb_camera", title: "USB camera" },
  { type: "video_file", title: "Video file" },
  { type: "images_folder", title: "Images folder" },
  { type: "rtsp", title: "RTSP camera" },
  { type: "sample_dataset", title: "Sample dataset" },
];

export const NAVIGABLE: SourceType[] = ["images_folder", "sample_dataset"];

export function describeSource(config: SourceConfig): string {
  switch (config.source_type) {
    case "usb_camera":
      return `/dev/video${config.device_id}`;
    case "video_file":
      return `${config.video_path}${config.loop === false ? " (once)" : ""}`;
    case "images_folder":
      return config.images_folder_path;
    case "rtsp":
      return config.url;
    case "sample_dataset":
      return config.dataset_id ?? "first bundled dataset";
    case "synthetic":
      return "moving textured shapes";
  }
}

function useSourceMutations(projectId: string) {
  const invalidate = useInvalidate();
  const refresh = () => {
    invalidate(keys.sources(projectId));
    invalidate(keys.pipeline);
  };
  const save = useMutation({
    mutationFn: ({ id, body }: { id?: string; body: Schemas["SourceBody"] }) =>
      id
        ? call(
            api.PUT("/api/v1/projects/{project_id}/sources/{source_id}", {
              params: { path: { project_id: projectId, source_id: id } },
              body,
            }),
          )
        : call(
            api.POST("/api/v1/projects/{project_id}/sources", {
              params: { path: { project_id: projectId } },
              body,
            }),
          ),
    onSuccess: refresh,
  });
  const remove = useMutation({
    mutationFn: (id: string) =>
      call(
        api.DELETE("/api/v1/projects/{project_id}/sources/{source_id}", {
          params: { path: { project_id: projectId, source_id: id } },
        }),
      ),
    onSuccess: refresh,
  });
  return { save, remove };
}

export function SourcesPage({ projectId }: { projectId: string }) {
  const sources = useSources(projectId);
  const pipeline = usePipeline();
  const { save, remove } = useSourceMutations(projectId);
  const [editing, setEditing] = useState<Schemas["Source"] | "new" | null>(null);
  const [deleting, setDeleting] = useState<Schemas["Source"] | null>(null);
  const active = sources.data?.find((s) => s.active);
  const sourceStatus = pipeline.data?.project_id === projectId ? pipeline.data.source : undefined;

  return (
    <div className="page">
      <h1>Sources</h1>
      <ErrorNote error={sources.error} />
      <table className="list">
        <thead>
          <tr>
            <th>Name</th>
            <th>Kind</th>
            <th>Where</th>
            <th>State</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {sources.data?.map((source) => (
            <tr key={source.id} data-testid="source-row">
              <td>{source.name}</td>
              <td>{SOURCE_TYPES.find((t) => t.type === source.config.source_type)?.title}</td>
              <td className="mono small-text">{describeSource(source.config)}</td>
              <td>
                {source.active ? (
                  <span className={`chip state-${sourceStatus?.source_id === source.id ? sourceStatus.state : "idle"}`}>
                    active{sourceStatus?.source_id === source.id ? ` · ${sourceStatus.state}` : ""}
                  </span>
                ) : (
                  <span className="muted">inactive</span>
                )}
                {source.active && sourceStatus?.source_id === source.id && sourceStatus.message && (
                  <div className="error-note">{sourceStatus.message}</div>
                )}
              </td>
              <td className="actions">
                {!source.active && (
                  <button
                    type="button"
                    className="small"
                    onClick={() =>
                      save.mutate({ id: source.id, body: { name: source.name, active: true, config: source.config } })
                    }
                  >
                    Make active
                  </button>
                )}
                <button type="button" className="small" onClick={() => setEditing(source)}>
                  Edit
                </button>
                <button type="button" className="small danger" onClick={() => setDeleting(source)}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {sources.data?.length === 0 && <p className="muted">No source yet: add one to see live video.</p>}
      {!editing && <ErrorNote error={save.error} prefix="Source" />}
      {editing ? (
        <SourceForm
          key={editing === "new" ? "new" : editing.id}
          projectId={projectId}
          source={editing === "new" ? undefined : editing}
          onDone={() => setEditing(null)}
        />
      ) : (
        <button type="button" className="primary" onClick={() => setEditing("new")}>
          Add source
        </button>
      )}
      {active && NAVIGABLE.includes(active.config.source_type) && (
        <FrameBrowser projectId={projectId} sourceId={active.id} />
      )}
      {deleting && (
        <ConfirmDialog
          title="Delete source"
          message={<>Delete the source <strong>{deleting.name}</strong>?</>}
          busy={remove.isPending}
          error={<ErrorNote error={remove.error} />}
          onCancel={() => setDeleting(null)}
          onConfirm={() => remove.mutate(deleting.id, { onSuccess: () => setDeleting(null) })}
        />
      )}
    </div>
  );
}

/** The add/edit form; a source's kind is fixed once created (the API refuses a change). */
function SourceForm({
  projectId,
  source,
  onDone,
}: {
  projectId: string;
  source?: Schemas["Source"];
  onDone: () => void;
}) {
  const { save } = useSourceMutations(projectId);
  const initial = source?.config;
  const [type, setType] = useState<SourceType>(initial?.source_type ?? "synthetic");
  const [name, setName] = useState(source?.name ?? "");
  const [active, setActive] = useState(source ? source.active : true);
  const [deviceId, setDeviceId] = useState(initial?.source_type === "usb_camera" ? String(initial.device_id) : "");
  const [videoPath, setVideoPath] = useState(initial?.source_type === "video_file" ? initial.video_path : "");
  const [loop, setLoop] = useState(initial?.source_type === "video_file" ? initial.loop !== false : true);
  const [folder, setFolder] = useState(initial?.source_type === "images_folder" ? initial.images_folder_path : "");
  const [url, setUrl] = useState(initial?.source_type === "rtsp" ? initial.url : "rtsp://");
  const [datasetId, setDatasetId] = useState(initial?.source_type === "sample_dataset" ? initial.dataset_id ?? "" : "");
  const cameras = useAvailableSources("usb_camera", type === "usb_camera");
  const datasets = useDatasets();

  const config = (): SourceConfig => {
    switch (type) {
      case "usb_camera":
        return { source_type: type, device_id: Number(deviceId) };
      case "video_file":
        return { source_type: type, video_path: videoPath, loop };
      case "images_folder":
        return { source_type: type, images_folder_path: folder };
      case "rtsp":
        return { source_type: type, url };
      case "sample_dataset":
        return { source_type: type, dataset_id: datasetId || undefined };
      case "synthetic":
        return { source_type: type };
    }
  };
  const err = (field: string) => fieldMessage(save.error, field) ?? fieldMessage(save.error, `config.${field}`);
  const blamedHere = ["name", "device_id", "video_path", "images_folder_path", "url", "dataset_id"].some((f) => err(f));

  return (
    <form
      className="card form"
      aria-label={source ? "Edit source" : "New source"}
      onSubmit={(event) => {
        event.preventDefault();
        if (type === "usb_camera" && deviceId === "") return;
        save.mutate(
          { id: source?.id, body: { name: name.trim() || undefined, active, config: config() } },
          { onSuccess: onDone },
        );
      }}
    >
      <h2>{source ? `Edit ${source.name}` : "New source"}</h2>
      <label>
        Kind
        <select aria-label="Source kind" value={type} disabled={!!source} onChange={(e) => setType(e.target.value as SourceType)}>
          {SOURCE_TYPES.map((t) => (
            <option key={t.type} value={t.type}>
              {t.title}
            </option>
          ))}
        </select>
      </label>
      <label>
        Name
        <input aria-label="Source name" placeholder="Default for the kind" value={name} onChange={(e) => setName(e.target.value)} />
        <FieldError message={err("name")} />
      </label>
      {type === "usb_camera" && (
        <label>
          Camera
          <select aria-label="Camera" value={deviceId} onChange={(e) => setDeviceId(e.target.value)}>
            <option value="">{cameras.isPending ? "Looking for cameras…" : "Choose a camera"}</option>
            {cameras.data?.map((camera) => (
              <option key={camera.device_id ?? camera.name} value={String(camera.device_id)}>
                {camera.name} (/dev/video{camera.device_id})
              </option>
            ))}
            {deviceId !== "" && !cameras.data?.some((c) => String(c.device_id) === deviceId) && (
              <option value={deviceId}>/dev/video{deviceId} (not connected now)</option>
            )}
          </select>
          {cameras.data?.length === 0 && <span className="muted">No camera is connected to the server.</span>}
          <ErrorNote error={cameras.error} />
          <FieldError message={err("device_id")} />
        </label>
      )}
      {type === "video_file" && (
        <>
          <label>
            Video file on the server (H.264 MP4, inside MEDIA_ROOTS)
            <input aria-label="Video path" value={videoPath} onChange={(e) => setVideoPath(e.target.value)} />
            <FieldError message={err("video_path")} />
          </label>
          <label className="check">
            <input type="checkbox" checked={loop} onChange={(e) => setLoop(e.target.checked)} /> Loop at the end
          </label>
        </>
      )}
      {type === "images_folder" && (
        <label>
          Folder on the server (inside MEDIA_ROOTS)
          <input aria-label="Images folder" value={folder} onChange={(e) => setFolder(e.target.value)} />
          <FieldError message={err("images_folder_path")} />
        </label>
      )}
      {type === "rtsp" && (
        <label>
          Stream URL (rtsp:// or rtsps://, H.264)
          <input aria-label="RTSP URL" value={url} onChange={(e) => setUrl(e.target.value)} />
          <FieldError message={err("url")} />
        </label>
      )}
      {type === "sample_dataset" && (
        <label>
          Dataset
          <select aria-label="Dataset" value={datasetId} onChange={(e) => setDatasetId(e.target.value)}>
            <option value="">The first bundled dataset</option>
            {datasets.data?.map((d) => (
              <option key={d.id} value={d.id}>
                {d.name} ({d.frames} frames)
              </option>
            ))}
          </select>
          <ErrorNote error={datasets.error} />
          <FieldError message={err("dataset_id")} />
        </label>
      )}
      <label className="check">
        <input type="checkbox" checked={active} onChange={(e) => setActive(e.target.checked)} /> Active (the pipeline
        reads this source)
      </label>
      {!blamedHere && <ErrorNote error={save.error} />}
      <div className="row">
        <button type="submit" className="primary" disabled={save.isPending || (type === "usb_camera" && deviceId === "")}>
          {source ? "Save source" : "Add source"}
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}
