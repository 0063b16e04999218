// Entry point: the query cache, the event stream and the token prompt around the app.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { ApiError } from "./api/errors";
import { EventStreamProvider } from "./api/events";
import { App } from "./App";
import { TokenGate } from "./components/TokenGate";
import "./styles.css";

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // Missing things and refused tokens do not get better by asking again.
      retry: (failures, error) =>
        !(error instanceof ApiError && error.status >= 400 && error.status < 500) && failures < 2,
      refetchOnWindowFocus: false,
    },
  },
});

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <TokenGate>
        <EventStreamProvider>
          <App />
        </EventStreamProvider>
      </TokenGate>
    </QueryClientProvider>
  </StrictMode>,
);
