// The server's event stream (`GET /api/v1/events`), followed once for the whole app: pipeline
// state and once-a-second metrics go into the pipeline query's cache, stored changes invalidate
// the queries they affect, so every screen stays current without polling.
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { authHeaders, type Schemas } from "./client";
import { invalidateForEntity, keys } from "./queries";
import { followEventStream } from "../lib/sse";
import { useTokenPrompt } from "../components/TokenGate";

interface EventStreamState {
  open: boolean;
  error?: string;
  /** When the last `metrics` or `pipeline` event arrived (ms since epoch), for freshness. */
  lastPipelineAt?: number;
}

const EventStreamContext = createContext<EventStreamState>({ open: false });

export function useEventStream(): EventStreamState {
  return useContext(EventStreamContext);
}

export function EventStreamProvider({ children }: { children: ReactNode }) {
  const client = useQueryClient();
  const [state, setState] = useState<EventStreamState>({ open: false });
  const { version: tokenVersion } = useTokenPrompt();

  useEffect(() => {
    const abort = new AbortController();
    void followEventStream(
      "/api/v1/events",
      authHeaders,
      (event) => {
        let message: Schemas["StreamEvent"];
        try {
          message = JSON.parse(event.data) as Schemas["StreamEvent"];
        } catch {
          return;
        }
        if (message.pipeline) {
          client.setQueryData(keys.pipeline, message.pipeline);
          setState((s) => ({ ...s, lastPipelineAt: Date.now() }));
        }
        if (message.kind === "pipeline") {
          // A state change may mean another project became active.
          void client.invalidateQueries({ queryKey: keys.projects });
        }
        if (message.entity) invalidateForEntity(client, message.entity);
      },
      (open, error) => setState((s) => ({ ...s, open, error })),
      abort.signal,
    );
    return () => abort.abort();
  }, [client, tokenVersion]);

  return <EventStreamContext.Provider value={state}>{children}</EventStreamContext.Provider>;
}
