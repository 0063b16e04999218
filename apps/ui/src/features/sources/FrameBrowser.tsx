// Browsing a navigable source (images folder, sample dataset): a thumbnail strip, the current
// position, first/previous/next/last and jump to a number. Moving makes the pipeline read and
// process that frame, so the live view shows it.
import { useState } from "react";
import { useMutation, useQuery } from "@tanstack/react-query";
import { api, call } from "../../api/client";
import { keys, useInvalidate } from "../../api/queries";
import { ErrorNote } from "../../components/ErrorNote";

const PAGE = 30;

export function FrameBrowser({ projectId, sourceId }: { projectId: string; sourceId: string }) {
  const invalidate = useInvalidate();
  const path = { project_id: projectId, source_id: sourceId };
  const index = useQuery({
    queryKey: keys.sourceIndex(projectId, sourceId),
    queryFn: () =>
      call(api.GET("/api/v1/projects/{project_id}/sources/{source_id}/frames/index", { params: { path } })),
  });
  const current = index.data?.index ?? 0;
  const count = index.data?.count ?? 0;
  const [pageStart, setPageStart] = useState<number | null>(null);
  const offset = pageStart ?? Math.floor(current / PAGE) * PAGE;
  const thumbnails = useQuery({
    queryKey: keys.sourceFrames(projectId, sourceId, offset),
    queryFn: () =>
      call(
        api.GET("/api/v1/projects/{project_id}/sources/{source_id}/frames", {
          params: { path, query: { offset, limit: PAGE } },
        }),
      ),
  });
  const seek = useMutation({
    mutationFn: (target: number) =>
      call(
        api.POST("/api/v1/projects/{project_id}/sources/{source_id}/frames/{index}", {
          params: { path: { ...path, index: target } },
        }),
      ),
    onSuccess: () => {
      setPageStart(null);
      invalidate(keys.sourceIndex(projectId, sourceId));
    },
  });
  const [jump, setJump] = useState("");
  const go = (target: number) => seek.mutate(Math.max(0, Math.min(count - 1, target)));

  return (
    <section className="card frame-browser" aria-label="Frames of the source">
      <h2>
        Frames <span className="muted" data-testid="frame-position">{count ? `${current + 1} / ${count}` : ""}</span>
      </h2>
      <div className="row">
        <button type="button" className="small" onClick={() => go(0)} disabled={current === 0}>First</button>
        <button type="button" className="small" onClick={() => go(current - 1)} disabled={current === 0}>◀ Previous</button>
        <button type="button" className="small" onClick={() => go(current + 1)} disabled={current >= count - 1}>Next ▶</button>
        <button type="button" className="small" onClick={() => go(count - 1)} disabled={current >= count - 1}>Last</button>
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            const n = Number(jump);
            if (Number.isInteger(n) && n >= 1) go(n - 1);
          }}
        >
          <input aria-label="Frame number" className="narrow" type="number" min={1} max={count} value={jump} onChange={(e) => setJump(e.target.value)} placeholder="#" />
          <button type="submit" className="small">Go</button>
        </form>
      </div>
      <ErrorNote error={index.error ?? thumbnails.error ?? seek.error} />
      <div className="thumb-strip">
        {offset > 0 && (
          <button type="button" className="small" onClick={() => setPageStart(Math.max(0, offset - PAGE))}>‹ earlier</button>
        )}
        {thumbnails.data?.frames.map((frame) => (
          <button
            type="button"
            key={frame.index}
            className={`thumb ${frame.index === current ? "current" : ""}`}
            onClick={() => go(frame.index)}
            title={`Frame ${frame.index + 1}`}
          >
            <img src={frame.thumbnail} alt={`Frame ${frame.index + 1}`} />
            <span>{frame.index + 1}</span>
          </button>
        ))}
        {thumbnails.data && offset + PAGE < thumbnails.data.pagination.total && (
          <button type="button" className="small" onClick={() => setPageStart(offset + PAGE)}>later ›</button>
        )}
      </div>
    </section>
  );
}
