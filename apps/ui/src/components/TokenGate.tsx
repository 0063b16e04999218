// Asks for the API token when the server answers 401 (it has API_TOKEN set), stores it in
// localStorage and retries what failed. Also lets a user change or forget the token.
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { onUnauthorized, readToken, storeToken } from "../api/client";
import { Modal } from "./Modal";

/** `version` changes whenever the token does, so long-lived connections can reopen with it. */
const TokenContext = createContext<{ ask: () => void; version: number }>({ ask: () => {}, version: 0 });
export const useTokenPrompt = () => useContext(TokenContext);

export function TokenGate({ children }: { children: ReactNode }) {
  const client = useQueryClient();
  const [asking, setAsking] = useState(false);
  const [draft, setDraft] = useState(readToken() ?? "");
  const [rejected, setRejected] = useState(false);
  const [version, setVersion] = useState(0);

  useEffect(
    () =>
      onUnauthorized(() => {
        setRejected(readToken() !== null);
        setAsking(true);
      }),
    [],
  );

  const save = () => {
    storeToken(draft.trim() || null);
    setAsking(false);
    setVersion((v) => v + 1);
    void client.invalidateQueries();
  };

  return (
    <TokenContext.Provider value={{ ask: () => setAsking(true), version }}>
      {children}
      {asking && (
        <Modal title="API token" onClose={() => setAsking(false)}>
          <form
            onSubmit={(event) => {
              event.preventDefault();
              save();
            }}
          >
            <p>
              {rejected
                ? "The server refused the stored token. Enter the server's API_TOKEN."
                : "This server requires a token (its API_TOKEN setting). It is kept in this browser only."}
            </p>
            <label>
              Token
              <input
                type="password"
                autoFocus
                value={draft}
                onChange={(event) => setDraft(event.target.value)}
              />
            </label>
            <div className="row end">
              <button type="button" onClick={() => setAsking(false)}>
                Cancel
              </button>
              <button type="submit" className="primary">
                Save token
              </button>
            </div>
          </form>
        </Modal>
      )}
    </TokenContext.Provider>
  );
}
