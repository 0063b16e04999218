// The app shell: the top bar (project switcher, pipeline state), the per-project left navigation
// and the screen the path names.
import { useEffect, type ReactNode } from "react";
import { Link, matchPath, navigate, useLocation } from "./lib/router";
import { useProjects, usePipeline } from "./api/queries";
import { useEventStream } from "./api/events";
import { useTokenPrompt } from "./components/TokenGate";
import { ErrorNote } from "./components/ErrorNote";
import { ProjectsPage, Welcome } from "./features/projects/ProjectsPage";
import { ProjectSettings } from "./features/projects/ProjectSettings";
import { LabelsPage } from "./features/labels/LabelsPage";
import { SourcesPage } from "./features/sources/SourcesPage";
import { LivePage } from "./features/live/LivePage";
import { PromptsPage } from "./features/prompts/PromptsPage";
import { PromptEditorPage } from "./features/prompts/PromptEditorPage";
import { ModelsPage } from "./features/models/ModelsPage";
import { SinksPage } from "./features/sinks/SinksPage";

const SECTIONS = [
  ["live", "Live view"],
  ["prompts", "Prompts"],
  ["labels", "Labels"],
  ["sources", "Sources"],
  ["models", "Models"],
  ["sinks", "Sinks"],
  ["settings", "Project"],
] as const;

export function App() {
  const { path } = useLocation();
  const editor =
    matchPath("/projects/:pid/prompts/new", path) ??
    matchPath("/projects/:pid/prompts/:promptId", path);
  const section = matchPath("/projects/:pid/:section", path);
  const projectId = editor?.pid ?? section?.pid ?? matchPath("/projects/:pid", path)?.pid;

  let screen: ReactNode;
  if (path === "/" || path === "") screen = <Home />;
  else if (path === "/projects") screen = <ProjectsPage />;
  else if (projectId && editor)
    screen = <PromptEditorPage projectId={projectId} promptId={editor.promptId} />;
  else if (projectId) screen = <ProjectScreen projectId={projectId} section={section?.section ?? "live"} />;
  else screen = <NotFound />;

  return (
    <div className="app">
      <TopBar projectId={projectId} />
      <div className="body">
        {projectId && <SideNav projectId={projectId} current={editor ? "prompts" : section?.section ?? "live"} />}
        <main className="content">{screen}</main>
      </div>
    </div>
  );
}

function ProjectScreen({ projectId, section }: { projectId: string; section: string }) {
  switch (section) {
    case "live":
      return <LivePage projectId={projectId} />;
    case "prompts":
      return <PromptsPage projectId={projectId} />;
    case "labels":
      return <LabelsPage projectId={projectId} />;
    case "sources":
      return <SourcesPage projectId={projectId} />;
    case "models":
      return <ModelsPage projectId={projectId} />;
    case "sinks":
      return <SinksPage projectId={projectId} />;
    case "settings":
      return <ProjectSettings projectId={projectId} />;
    default:
      return <NotFound />;
  }
}

/** `/`: the active project's live view, the project list, or the welcome screen when empty. */
function Home() {
  const projects = useProjects();
  const list = projects.data;
  const active = list?.find((p) => p.active);
  useEffect(() => {
    if (active) navigate(`/projects/${active.id}/live`, { replace: true });
  }, [active]);
  if (projects.isPending) return <p className="muted">Loading projects…</p>;
  if (projects.error) return <ErrorNote error={projects.error} prefix="Projects" />;
  if (list && list.length === 0) return <Welcome />;
  if (!active) return <ProjectsPage />;
  return null;
}

function NotFound() {
  return (
    <div className="page">
      <h1>Not found</h1>
      <Link to="/">Back to the start</Link>
    </div>
  );
}

function TopBar({ projectId }: { projectId?: string }) {
  const projects = useProjects();
  const pipeline = usePipeline();
  const stream = useEventStream();
  const { ask } = useTokenPrompt();
  const state = pipeline.data?.state ?? "unknown";
  const runningProject = projects.data?.find((p) => p.id === pipeline.data?.project_id);
  return (
    <header className="topbar">
      <Link to="/projects" className="brand">
        visprompt
      </Link>
      <select
        aria-label="Switch project"
        value={projectId ?? ""}
        onChange={(event) => {
          if (event.target.value) navigate(`/projects/${event.target.value}/live`);
          else navigate("/projects");
        }}
      >
        <option value="">All projects…</option>
        {projects.data?.map((p) => (
          <option key={p.id} value={p.id}>
            {p.name}
            {p.active ? " (active)" : ""}
          </option>
        ))}
      </select>
      <span className="spacer" />
      <span
        className={`chip state-${state}`}
        title={pipeline.data?.message ?? "State of the live pipeline (the active project's)"}
        data-testid="pipeline-state"
      >
        pipeline: {state}
        {runningProject ? ` · ${runningProject.name}` : ""}
      </span>
      <span
        className={`dot ${stream.open ? "ok" : "bad"}`}
        title={stream.open ? "Live updates connected" : `Live updates disconnected${stream.error ? `: ${stream.error}` : ""}`}
      />
      <button type="button" className="small" onClick={ask}>
        Token
      </button>
    </header>
  );
}

function SideNav({ projectId, current }: { projectId: string; current: string }) {
  return (
    <nav className="sidenav" aria-label="Project">
      {SECTIONS.map(([section, title]) => (
        <Link
          key={section}
          to={`/projects/${projectId}/${section}`}
          className={current === section ? "current" : undefined}
        >
          {title}
        </Link>
      ))}
    </nav>
  );
}
