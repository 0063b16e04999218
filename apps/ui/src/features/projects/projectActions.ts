// Project mutations shared by the project list and the project's own settings page.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, authHeaders, call, reportUnauthorized } from "../../api/client";
import { apiErrorFrom } from "../../api/errors";
import { keys } from "../../api/queries";
import { filenameFromDisposition, saveBlob } from "../../lib/download";

export function useProjectMutations() {
  const client = useQueryClient();
  const refresh = () => {
    void client.invalidateQueries({ queryKey: keys.projects });
    void client.invalidateQueries({ queryKey: keys.pipeline });
  };
  const create = useMutation({
    mutationFn: (name: string) =>
      call(api.POST("/api/v1/projects", { body: { name, active: true } })),
    onSuccess: refresh,
  });
  const rename = useMutation({
    mutationFn: ({ id, name }: { id: string; name: string }) =>
      call(
        api.PUT("/api/v1/projects/{project_id}", {
          params: { path: { project_id: id } },
          body: { name },
        }),
      ),
    onSuccess: refresh,
  });
  const remove = useMutation({
    mutationFn: (id: string) =>
      call(api.DELETE("/api/v1/projects/{project_id}", { params: { path: { project_id: id } } })),
    onSuccess: refresh,
  });
  const activate = useMutation({
    mutationFn: (id: string) =>
      call(
        api.POST("/api/v1/projects/{project_id}/activate", {
          params: { path: { project_id: id } },
        }),
      ),
    onSuccess: refresh,
  });
  const deactivate = useMutation({
    mutationFn: (id: string) =>
      call(
        api.POST("/api/v1/projects/{project_id}/deactivate", {
          params: { path: { project_id: id } },
        }),
      ),
    onSuccess: refresh,
  });
  const exportArchive = useMutation({
    mutationFn: async ({ id, name }: { id: string; name: string }) => {
      // A plain fetch: the archive is binary and its file name comes from the response header.
      const response = await fetch(`/api/v1/projects/${id}/export`, { headers: authHeaders() });
      if (!response.ok) {
        if (response.status === 401) reportUnauthorized();
        throw apiErrorFrom(response.status, await response.json().catch(() => null));
      }
      const blob = await response.blob();
      const filename =
        filenameFromDisposition(response.headers.get("content-disposition")) ??
        `${name.replace(/[^A-Za-z0-9._-]+/g, "_")}.zip`;
      saveBlob(blob, filename);
      return filename;
    },
  });
  const importArchive = useMutation({
    mutationFn: async ({ file, name }: { file: File; name?: string }) => {
      const query = name ? `?name=${encodeURIComponent(name)}` : "";
      const response = await fetch(`/api/v1/projects/import${query}`, {
        method: "POST",
        headers: { "Content-Type": "application/zip", ...authHeaders() },
        body: file,
      });
      const body = await response.json().catch(() => null);
      if (!response.ok) {
        if (response.status === 401) reportUnauthorized();
        throw apiErrorFrom(response.status, body);
      }
      return body as { id: string; name: string };
    },
    onSuccess: refresh,
  });
  return { create, rename, remove, activate, deactivate, exportArchive, importArchive };
}
