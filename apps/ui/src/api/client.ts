// The typed API client: openapi-fetch over the paths generated from openapi/openapi.json, with
// the optional bearer token (kept in localStorage) added to every request. A 401 tells the app
// to ask for a token. `call` unwraps a response into its data or throws an ApiError.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";
import { ApiError, apiErrorFrom } from "./errors";

export type Schemas = components["schemas"];

const TOKEN_KEY = "visprompt.apiToken";

export function readToken(): string | null {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function storeToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

/** Called when the server answers 401, so the app can ask for a token. */
type UnauthorizedListener = () => void;
const unauthorizedListeners = new Set<UnauthorizedListener>();
export function onUnauthorized(listener: UnauthorizedListener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}
export function reportUnauthorized(): void {
  unauthorizedListeners.forEach((listener) => listener());
}

/** Headers every request needs: the token, when there is one. */
export function authHeaders(): Record<string, string> {
  const token = readToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

const auth: Middleware = {
  onRequest({ request }) {
    const token = readToken();
    if (token) request.headers.set("Authorization", `Bearer ${token}`);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401) reportUnauthorized();
    return response;
  },
};

// A relative base, so the same build works behind the Vite proxy and served by the server.
export const api = createClient<paths>({ baseUrl: "" });
api.use(auth);

/** The result shape of every openapi-fetch call. */
interface FetchResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** Awaits an openapi-fetch call; returns its data or throws an ApiError with the body's message. */
export async function call<T>(request: Promise<FetchResult<T>>): Promise<T> {
  const { data, error, response } = await request;
  if (!response.ok) throw apiErrorFrom(response.status, error);
  return data as T;
}

/** Fetches a binary resource (frame images, exports) with the token, as a Blob. */
export async function fetchBlob(url: string): Promise<Blob> {
  const response = await fetch(url, { headers: authHeaders() });
  if (!response.ok) {
    if (response.status === 401) reportUnauthorized();
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: keep the text.
    }
    throw apiErrorFrom(response.status, body);
  }
  return response.blob();
}

export { ApiError };

/** Every list endpoint takes offset/limit; the UI asks for whole lists up to the server's cap. */
export const WHOLE_LIST = { offset: 0, limit: 1000 } as const;
