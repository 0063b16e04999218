// Server state through TanStack Query: one query per API resource the screens read, with keys
// that the event stream and the mutations invalidate. Screens import these hooks, never fetch.
import { useQuery, useQueryClient, type QueryClient } from "@tanstack/react-query";
import { api, call, WHOLE_LIST } from "./client";

export const keys = {
  projects: ["projects"] as const,
  project: (id: string) => ["projects", id] as const,
  labels: (pid: string) => ["projects", pid, "labels"] as const,
  sources: (pid: string) => ["projects", pid, "sources"] as const,
  sourceFrames: (pid: string, sid: string, offset: number) =>
    ["projects", pid, "sources", sid, "frames", offset] as const,
  sourceIndex: (pid: string, sid: string) => ["projects", pid, "sources", sid, "index"] as const,
  prompts: (pid: string) => ["projects", pid, "prompts"] as const,
  prompt: (pid: string, promptId: string) => ["projects", pid, "prompts", promptId] as const,
  models: (pid: string) => ["projects", pid, "models"] as const,
  modelStatus: (pid: string) => ["projects", pid, "model-status"] as const,
  sinks: (pid: string) => ["projects", pid, "sinks"] as const,
  frames: (pid: string) => ["projects", pid, "frames"] as const,
  pipeline: ["pipeline"] as const,
  supportedModels: ["system", "supported-models"] as const,
  datasets: ["system", "datasets"] as const,
  availableSources: (type: string) => ["system", "source-types", type] as const,
};

export function useProjects() {
  return useQuery({
    queryKey: keys.projects,
    queryFn: async () =>
      (await call(api.GET("/api/v1/projects", { params: { query: WHOLE_LIST } }))).projects,
  });
}

export function useProject(projectId: string) {
  return useQuery({
    queryKey: keys.project(projectId),
    queryFn: () =>
      call(api.GET("/api/v1/projects/{project_id}", { params: { path: { project_id: projectId } } })),
  });
}

export function useLabels(projectId: string) {
  return useQuery({
    queryKey: keys.labels(projectId),
    queryFn: async () =>
      (
        await call(
          api.GET("/api/v1/projects/{project_id}/labels", {
            params: { path: { project_id: projectId }, query: WHOLE_LIST },
          }),
        )
      ).labels,
  });
}

export function useSources(projectId: string) {
  return useQuery({
    queryKey: keys.sources(projectId),
    queryFn: async () =>
      (
        await call(
          api.GET("/api/v1/projects/{project_id}/sources", {
            params: { path: { project_id: projectId }, query: WHOLE_LIST },
          }),
        )
      ).sources,
  });
}

export function usePrompts(projectId: string) {
  return useQuery({
    queryKey: keys.prompts(projectId),
    queryFn: async () =>
      (
        await call(
          api.GET("/api/v1/projects/{project_id}/prompts", {
            params: { path: { project_id: projectId }, query: WHOLE_LIST },
          }),
        )
      ).prompts,
  });
}

export function useModels(projectId: string) {
  return useQuery({
    queryKey: keys.models(projectId),
    queryFn: async () =>
      (
        await call(
          api.GET("/api/v1/projects/{project_id}/models", {
            params: { path: { project_id: projectId }, query: WHOLE_LIST },
          }),
        )
      ).models,
  });
}

/** Polls fast while weights download or load, slowly otherwise. */
export function useModelStatus(projectId: string) {
  return useQuery({
    queryKey: keys.modelStatus(projectId),
    queryFn: () =>
      call(
        api.GET("/api/v1/projects/{project_id}/model-status", {
          params: { path: { project_id: projectId } },
        }),
      ),
    refetchInterval: (query) => {
      const status = query.state.data?.status;
      return status === "downloading" || status === "loading" ? 1000 : 5000;
    },
  });
}

export function useSinks(projectId: string) {
  return useQuery({
    queryKey: keys.sinks(projectId),
    queryFn: async () =>
      (
        await call(
          api.GET("/api/v1/projects/{project_id}/sinks", {
            params: { path: { project_id: projectId }, query: WHOLE_LIST },
          }),
        )
      ).sinks,
  });
}

export function usePipeline() {
  return useQuery({
    queryKey: keys.pipeline,
    queryFn: () => call(api.GET("/api/v1/pipeline")),
    // The event stream pushes fresher copies; this poll only covers a lost stream.
    refetchInterval: 10000,
  });
}

export function useSupportedModels() {
  return useQuery({
    queryKey: keys.supportedModels,
    queryFn: () =>
      call(api.GET("/api/v1/system/supported-models", { params: { query: WHOLE_LIST } })),
    staleTime: 60000,
  });
}

export function useDatasets() {
  return useQuery({
    queryKey: keys.datasets,
    queryFn: async () => (await call(api.GET("/api/v1/system/datasets"))).datasets,
    staleTime: 60000,
  });
}

export function useAvailableSources(sourceType: string, enabled: boolean) {
  return useQuery({
    queryKey: keys.availableSources(sourceType),
    queryFn: () =>
      call(
        api.GET("/api/v1/system/source-types/{source_type}/sources", {
          params: { path: { source_type: sourceType } },
        }),
      ),
    enabled,
  });
}

/** Invalidation helper for mutations: refresh everything under a project. */
export function useInvalidate() {
  const client = useQueryClient();
  return (key: readonly unknown[]) => client.invalidateQueries({ queryKey: key });
}

/**
 * Maps an `entity` event of the stream to the queries it makes stale. The event names the
 * entity in words (`label`, `model configuration`, ...), see EntityChange in the API document.
 */
export function invalidateForEntity(
  client: QueryClient,
  change: { entity: string; project_id?: string | null },
): void {
  const pid = change.project_id ?? undefined;
  switch (change.entity) {
    case "project":
    case "active project":
      void client.invalidateQueries({ queryKey: keys.projects });
      break;
    case "label":
      if (pid) void client.invalidateQueries({ queryKey: keys.labels(pid) });
      break;
    case "prompt":
      if (pid) void client.invalidateQueries({ queryKey: keys.prompts(pid) });
      break;
    case "frame":
      if (pid) void client.invalidateQueries({ queryKey: keys.frames(pid) });
      break;
    case "source":
      if (pid) void client.invalidateQueries({ queryKey: keys.sources(pid) });
      break;
    case "sink":
      if (pid) void client.invalidateQueries({ queryKey: keys.sinks(pid) });
      break;
    case "model configuration":
      if (pid) void client.invalidateQueries({ queryKey: keys.models(pid) });
      if (pid) void client.invalidateQueries({ queryKey: keys.modelStatus(pid) });
      break;
  }
}
