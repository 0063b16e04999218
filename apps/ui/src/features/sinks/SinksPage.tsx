// Sinks of a project: MQTT brokers, webhooks and JSON Lines files that receive every prediction;
// add, edit, activate/deactivate, delete, and their live state (published, skipped, errors).
import { useState } from "react";
import { useMutation } from "@tanstack/react-query";
import { api, call, type Schemas } from "../../api/client";
import { fieldMessage } from "../../api/errors";
import { keys, useInvalidate, usePipeline, useSinks } from "../../api/queries";
import { ErrorNote, FieldError } from "../../components/ErrorNote";
import { ConfirmDialog } from "../../components/Modal";

type Sink = Schemas["Sink"];
type SinkType = Schemas["SinkConfigBody"]["sink_type"];

const SINK_TYPES: { type: SinkType; title: string }[] = [
  { type: "mqtt", title: "MQTT broker" },
  { type: "webhook", title: "Webhook" },
  { type: "file", title: "File (JSON Lines)" },
];

function describeSink(config: Schemas["SinkConfigView"]): string {
  switch (config.sink_type) {
    case "mqtt":
      return `${config.tls ? "mqtts" : "mqtt"}://${config.broker_host}:${config.broker_port} → ${config.topic} (QoS ${config.qos})`;
    case "webhook":
      return config.url;
    case "file":
      return config.path;
  }
}

/** A stored sink's config as a request body; the MQTT password is left out, keeping the stored one. */
function bodyFromView(config: Schemas["SinkConfigView"]): Schemas["SinkConfigBody"] {
  if (config.sink_type === "mqtt") {
    return {
      sink_type: "mqtt",
      broker_host: config.broker_host,
      broker_port: config.broker_port,
      topic: config.topic,
      qos: config.qos,
      tls: config.tls,
      username: config.username ?? undefined,
    };
  }
  return config;
}

function useSinkMutations(projectId: string) {
  const invalidate = useInvalidate();
  const refresh = () => {
    invalidate(keys.sinks(projectId));
    invalidate(keys.pipeline);
  };
  const save = useMutation({
    mutationFn: ({ id, body }: { id?: string; body: Schemas["SinkBody"] }) =>
      id
        ? call(api.PUT("/api/v1/projects/{project_id}/sinks/{sink_id}", { params: { path: { project_id: projectId, sink_id: id } }, body }))
        : call(api.POST("/api/v1/projects/{project_id}/sinks", { params: { path: { project_id: projectId } }, body })),
    onSuccess: refresh,
  });
  const remove = useMutation({
    mutationFn: (id: string) =>
      call(api.DELETE("/api/v1/projects/{project_id}/sinks/{sink_id}", { params: { path: { project_id: projectId, sink_id: id } } })),
    onSuccess: refresh,
  });
  return { save, remove };
}

export function SinksPage({ projectId }: { projectId: string }) {
  const sinks = useSinks(projectId);
  const pipeline = usePipeline();
  const { save, remove } = useSinkMutations(projectId);
  const [editing, setEditing] = useState<Sink | "new" | null>(null);
  const [deleting, setDeleting] = useState<Sink | null>(null);
  const statusOf = (id: string) =>
    pipeline.data?.project_id === projectId ? pipeline.data.sinks.find((s) => s.sink_id === id) : undefined;

  return (
    <div className="page">
      <h1>Sinks</h1>
      <p className="muted">Every active sink receives each prediction as JSON (see the payload documentation).</p>
      <ErrorNote error={sinks.error} />
      <table className="list">
        <thead>
          <tr>
            <th>Name</th>
            <th>Kind</th>
            <th>Target</th>
            <th>State</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {sinks.data?.map((sink) => {
            const status = statusOf(sink.id);
            return (
              <tr key={sink.id} data-testid="sink-row">
                <td>{sink.name}</td>
                <td>{SINK_TYPES.find((t) => t.type === sink.config.sink_type)?.title}</td>
                <td className="mono small-text">{describeSink(sink.config)}</td>
                <td>
                  {sink.active ? (
                    status ? (
                      <>
                        <span className={`chip sink-${status.state}`}>{status.state}</span>{" "}
                        <span className="small-text muted">
                          {status.published} sent · {status.skipped} skipped · {status.errors} errors
                        </span>
                        {(status.last_error || status.message) && <div className="error-note">{status.last_error ?? status.message}</div>}
                      </>
                    ) : (
                      <span className="chip">active</span>
                    )
                  ) : (
                    <span className="muted">inactive</span>
                  )}
                </td>
                <td className="actions">
                  <button
                    type="button"
                    className="small"
                    onClick={() => save.mutate({ id: sink.id, body: { name: sink.name, active: !sink.active, config: bodyFromView(sink.config) } })}
                  >
                    {sink.active ? "Deactivate" : "Activate"}
                  </button>
                  <button type="button" className="small" onClick={() => setEditing(sink)}>
                    Edit
                  </button>
                  <button type="button" className="small danger" onClick={() => setDeleting(sink)}>
                    Delete
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {sinks.data?.length === 0 && <p className="muted">No sinks yet.</p>}
      {!editing && <ErrorNote error={save.error} prefix="Sink" />}
      {editing ? (
        <SinkForm key={editing === "new" ? "new" : editing.id} projectId={projectId} sink={editing === "new" ? undefined : editing} onDone={() => setEditing(null)} />
      ) : (
        <button type="button" className="primary" onClick={() => setEditing("new")}>
          Add sink
        </button>
      )}
      {deleting && (
        <ConfirmDialog
          title="Delete sink"
          message={<>Delete the sink <strong>{deleting.name}</strong>?</>}
          busy={remove.isPending}
          error={<ErrorNote error={remove.error} />}
          onCancel={() => setDeleting(null)}
          onConfirm={() => remove.mutate(deleting.id, { onSuccess: () => setDeleting(null) })}
        />
      )}
    </div>
  );
}

function SinkForm({ projectId, sink, onDone }: { projectId: string; sink?: Sink; onDone: () => void }) {
  const { save } = useSinkMutations(projectId);
  const c = sink?.config;
  const mqtt = c?.sink_type === "mqtt" ? c : undefined;
  const [type, setType] = useState<SinkType>(c?.sink_type ?? "mqtt");
  const [name, setName] = useState(sink?.name ?? "");
  const [active, setActive] = useState(sink ? sink.active : true);
  const [host, setHost] = useState(mqtt?.broker_host ?? "");
  const [port, setPort] = useState(String(mqtt?.broker_port ?? 1883));
  const [topic, setTopic] = useState(mqtt?.topic ?? "visprompt/predictions");
  const [qos, setQos] = useState(String(mqtt?.qos ?? 0));
  const [tls, setTls] = useState(mqtt?.tls ?? false);
  const [username, setUsername] = useState<string>(mqtt?.username ?? "");
  const [password, setPassword] = useState("");
  const [url, setUrl] = useState(c?.sink_type === "webhook" ? c.url : "https://");
  const [path, setPath] = useState(c?.sink_type === "file" ? c.path : "");
  const [portError, setPortError] = useState<string>();

  const config = (): Schemas["SinkConfigBody"] | null => {
    switch (type) {
      case "mqtt": {
        const portNumber = Number(port);
        if (!Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535) {
          setPortError("A port from 1 to 65535.");
          return null;
        }
        setPortError(undefined);
        return {
          sink_type: "mqtt",
          broker_host: host.trim(),
          broker_port: portNumber,
          topic: topic.trim() || undefined,
          qos: Number(qos),
          tls,
          username: username.trim() || undefined,
          // Left out on edit when not typed: the server keeps the stored password.
          password: password || undefined,
        };
      }
      case "webhook":
        return { sink_type: "webhook", url: url.trim() };
      case "file":
        return { sink_type: "file", path: path.trim() };
    }
  };
  const err = (field: string) => fieldMessage(save.error, field) ?? fieldMessage(save.error, `config.${field}`);
  const blamed = ["name", "broker_host", "broker_port", "topic", "qos", "username", "password", "url", "path"].some((f) => err(f));

  return (
    <form
      className="card form"
      aria-label={sink ? "Edit sink" : "New sink"}
      onSubmit={(e) => {
        e.preventDefault();
        const body = config();
        if (body) save.mutate({ id: sink?.id, body: { name: name.trim() || undefined, active, config: body } }, { onSuccess: onDone });
      }}
    >
      <h2>{sink ? `Edit ${sink.name}` : "New sink"}</h2>
      <label>
        Kind
        <select aria-label="Sink kind" value={type} disabled={!!sink} onChange={(e) => setType(e.target.value as SinkType)}>
          {SINK_TYPES.map((t) => (
            <option key={t.type} value={t.type}>
              {t.title}
            </option>
          ))}
        </select>
      </label>
      <label>
        Name
        <input aria-label="Sink name" placeholder="Default for the kind" value={name} onChange={(e) => setName(e.target.value)} />
        <FieldError message={err("name")} />
      </label>
      {type === "mqtt" && (
        <div className="param-grid">
          <label>
            Broker host
            <input aria-label="Broker host" value={host} onChange={(e) => setHost(e.target.value)} />
            <FieldError message={err("broker_host")} />
          </label>
          <label>
            Port
            <input aria-label="Broker port" value={port} onChange={(e) => setPort(e.target.value)} inputMode="numeric" />
            <FieldError message={portError ?? err("broker_port")} />
          </label>
          <label>
            Topic
            <input aria-label="Topic" value={topic} onChange={(e) => setTopic(e.target.value)} />
            <FieldError message={err("topic")} />
          </label>
          <label>
            QoS
            <select aria-label="QoS" value={qos} onChange={(e) => setQos(e.target.value)}>
              <option value="0">0 · at most once</option>
              <option value="1">1 · at least once</option>
              <option value="2">2 · exactly once</option>
            </select>
          </label>
          <label>
            Username
            <input aria-label="Username" value={username} onChange={(e) => setUsername(e.target.value)} autoComplete="off" />
            <FieldError message={err("username")} />
          </label>
          <label>
            Password
            <input
              aria-label="Password"
              type="password"
              value={password}
              placeholder={mqtt?.password_set ? "(stored; type to replace)" : ""}
              onChange={(e) => setPassword(e.target.value)}
              autoComplete="new-password"
            />
            <FieldError message={err("password")} />
          </label>
          <label className="check">
            <input type="checkbox" checked={tls} onChange={(e) => setTls(e.target.checked)} /> TLS (verify the broker's certificate)
          </label>
        </div>
      )}
      {type === "webhook" && (
        <label>
          URL (receives each prediction as a JSON POST)
          <input aria-label="Webhook URL" value={url} onChange={(e) => setUrl(e.target.value)} />
          <FieldError message={err("url")} />
        </label>
      )}
      {type === "file" && (
        <label>
          File on the server (inside MEDIA_ROOTS; rotated by size)
          <input aria-label="File path" value={path} onChange={(e) => setPath(e.target.value)} />
          <FieldError message={err("path")} />
        </label>
      )}
      <label className="check">
        <input type="checkbox" checked={active} onChange={(e) => setActive(e.target.checked)} /> Active
      </label>
      {!blamed && <ErrorNote error={save.error} />}
      <div className="row">
        <button type="submit" className="primary" disabled={save.isPending}>
          {sink ? "Save sink" : "Add sink"}
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}
